"""Inspecting a piece: upload intake, admission, the Inspector seam and its model implementation,
heatmaps, and the inspection routes."""
