"""The QC review queue, its decisions exported as training data, and the review routes."""
