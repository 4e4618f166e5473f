"""Stand-in crops for the branch's tests."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def lit(h: int, w: int, spots: list[tuple[int, int, int, int]]) -> NDArray[np.uint8]:
    """A black (h, w) RGB crop with white rectangles (y0, x0, y1, x1)."""
    img = np.zeros((h, w, 3), np.uint8)
    for y0, x0, y1, x1 in spots:
        img[y0:y1, x0:x1] = 255
    return img
