"""The model's heatmap for a photo's top defect class, drawn over the photo's crop as a PNG."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np

from qc_model.decode import DecodeLimits, decode_photo
from qc_model.preprocess import extract_box

# The overlay's longer side: enough for a reviewer to see where, small enough to send quickly.
MAX_SIDE = 512
HEAT_WEIGHT = 0.45


def render_heatmap(photo: bytes, entry: Mapping[str, Any], limits: DecodeLimits) -> bytes:
    """PNG of the stored heatmap `entry` (class, crop_box, image_size, grid) over the crop of
    `photo` the model saw. Raises ValueError when the entry is malformed."""
    grid = np.asarray(entry["grid"], np.float32)
    if grid.ndim != 2 or grid.size == 0:
        raise ValueError(f"heatmap grid must be 2-D, got shape {grid.shape}")
    image = decode_photo(photo, limits=limits).image
    box = [float(v) for v in entry["crop_box"]]
    # The box is in the pixels of the photo as decoded at inspection time; rescale if the decode
    # target has changed since.
    stored_w = float(entry.get("image_size", [image.shape[1]])[0])
    f = image.shape[1] / stored_w if stored_w > 0 else 1.0
    x0, y0, x1, y1 = (round(v * f) for v in box)
    crop = extract_box(image, (x0, y0, x1, y1))
    side = crop.shape[0]
    if side > MAX_SIDE:
        crop = np.asarray(
            cv2.resize(crop, (MAX_SIDE, MAX_SIDE), interpolation=cv2.INTER_AREA), np.uint8
        )
    h, w = crop.shape[:2]
    heat = cv2.resize(np.clip(grid, 0.0, 1.0), (w, h), interpolation=cv2.INTER_CUBIC)
    colour = cv2.applyColorMap(np.clip(heat * 255.0, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
    blended = cv2.addWeighted(crop, 1.0 - HEAT_WEIGHT, colour, HEAT_WEIGHT, 0.0)
    ok, png = cv2.imencode(".png", blended)
    if not ok:
        raise ValueError("the overlay could not be encoded as PNG")
    return png.tobytes()
