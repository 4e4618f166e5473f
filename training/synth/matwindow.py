"""The calibration mat drawn into any pixel window of the table plane, pixel-exact with MatSpec."""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
from numpy.typing import NDArray

from qc_model.mat import ARUCO_DICTIONARY, MatSpec

# MatSpec.render draws the whole card; a close-up 12 MP photo would need a card of 8000 px and
# more, so the renderer draws only the part it sees. A test proves the two agree pixel for pixel.


@lru_cache(maxsize=64)
def _marker(marker_id: int, side: int) -> NDArray[np.uint8]:
    dictionary = cv2.aruco.getPredefinedDictionary(ARUCO_DICTIONARY)
    return cv2.aruco.generateImageMarker(dictionary, marker_id, side)


def render_mat_window(
    spec: MatSpec, px_per_mm: float, x0: int, y0: int, w: int, h: int
) -> tuple[NDArray[np.uint8], NDArray[np.bool_]]:
    """Card pixels of window [x0, x0+w) x [y0, y0+h) of the full render, and where the card is.

    Window pixel (i, j) is pixel (y0 + i, x0 + j) of `spec.render(px_per_mm)`; the window may
    reach beyond the card (negative origin), where the card mask is False.
    """
    mw, mh = round(spec.width_mm * px_per_mm), round(spec.height_mm * px_per_mm)
    # One plane per channel: a memset each, several times faster than a broadcast assignment.
    img = cv2.merge([np.full((h, w), v, np.uint8) for v in spec.paper_rgb[::-1]])
    card = np.zeros((h, w), np.bool_)
    card[max(0, -y0) : max(0, min(h, mh - y0)), max(0, -x0) : max(0, min(w, mw - x0))] = True
    side = round(spec.marker_mm * px_per_mm)
    for marker_id, (mx, my) in spec.marker_origins_mm.items():
        tx, ty = round(mx * px_per_mm) - x0, round(my * px_per_mm) - y0
        if tx >= w or ty >= h or tx + side <= 0 or ty + side <= 0:
            continue
        tag = _marker(marker_id, side)
        sx0, sy0 = max(0, -tx), max(0, -ty)
        sx1, sy1 = min(side, w - tx), min(side, h - ty)
        img[ty + sy0 : ty + sy1, tx + sx0 : tx + sx1] = tag[sy0:sy1, sx0:sx1, None]
    ax0, ay0, ax1, ay1 = (round(v * px_per_mm) for v in spec.placement_area_mm)
    colour = (190, 188, 184)
    step = max(2, round(4 * px_per_mm))
    # Same dotted border as MatSpec.render, with every point shifted into the window.
    for x in range(ax0, ax1, step * 2):
        if x - x0 > w or min(x + step, ax1) - x0 < 0:
            continue
        cv2.line(img, (x - x0, ay0 - y0), (min(x + step, ax1) - x0, ay0 - y0), colour, 1)
        cv2.line(img, (x - x0, ay1 - y0), (min(x + step, ax1) - x0, ay1 - y0), colour, 1)
    for y in range(ay0, ay1, step * 2):
        if y - y0 > h or min(y + step, ay1) - y0 < 0:
            continue
        cv2.line(img, (ax0 - x0, y - y0), (ax0 - x0, min(y + step, ay1) - y0), colour, 1)
        cv2.line(img, (ax1 - x0, y - y0), (ax1 - x0, min(y + step, ay1) - y0), colour, 1)
    return img, card
