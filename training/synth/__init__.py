"""Synthetic phone photos of catalog designs on the calibration mat: labels, masks, truth."""
