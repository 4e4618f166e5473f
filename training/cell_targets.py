"""The crop's part of a full-photo defect mask: where the surface branch's per-cell targets
(training.surface) start from. Past the photo's frame there is no defect."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from qc_model.locate import Box


def extract_mask(mask: NDArray[np.uint8], box: Box) -> NDArray[np.uint8]:
    """The box's part of a full-photo mask; past the frame there is no defect (zeros)."""
    h, w = mask.shape[:2]
    x0, y0, x1, y1 = box
    out = np.zeros((y1 - y0, x1 - x0), np.uint8)
    ix0, iy0, ix1, iy1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if ix1 > ix0 and iy1 > iy0:
        out[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0] = mask[iy0:iy1, ix0:ix1]
    return out
