"""Photos for the fingerprint tests: the calibration mat with a piece of beads and wire drawn
from a seed (each seed another piece), under a soft light gradient, and a cheat's copy of one."""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from qc_model.mat import DEFAULT_MAT


def scene(seed: int, px_per_mm: float = 3.5) -> NDArray[np.uint8]:
    rng = np.random.default_rng(seed)
    img = DEFAULT_MAT.render(px_per_mm).astype(np.float32)
    h, w = img.shape[:2]
    # A piece: a wire loop with beads, placed and shaped by the seed, in the placement area.
    cx = w / 2 + rng.uniform(-0.15, 0.15) * w
    cy = h / 2 + rng.uniform(-0.1, 0.1) * h
    r = rng.uniform(15, 30) * px_per_mm
    angles = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(6, 14))))
    pts = np.stack([cx + r * np.cos(angles), cy + 0.7 * r * np.sin(angles)], axis=1)
    cv2.polylines(img, [pts.astype(np.int32)], True, (60, 150, 190), 3, cv2.LINE_AA)
    for x, y in pts:
        colour = tuple(float(c) for c in rng.integers(20, 200, 3))
        cv2.circle(img, (int(x), int(y)), int(rng.uniform(2, 5) * px_per_mm), colour, -1)
    # Light: brighter towards one side.
    gx = np.linspace(-1, 1, w)[None, :, None] * rng.uniform(-0.08, 0.08)
    lit = np.clip(img * (1 + gx), 0, 255).astype(np.uint8)
    return np.asarray(cv2.GaussianBlur(lit, (3, 3), 0), np.uint8)


def jpeg(img: NDArray[np.uint8], quality: int = 92) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


def cheat_copy(
    img: NDArray[np.uint8],
    *,
    angle: float = 7.0,
    crop: float = 0.08,
    scale: float = 0.6,
    brightness: float = 0.15,
    quality: int = 65,
) -> bytes:
    """Rotated (frame kept), `crop` of the area cut off the right and bottom, resized,
    brightened and re-encoded: the same photo, not the same file."""
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    out = cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REPLICATE)
    keep = np.sqrt(1 - crop)
    out = out[: round(h * keep), : round(w * keep)]
    out = cv2.resize(out, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    out = np.clip(out.astype(np.float32) * (1 + brightness), 0, 255).astype(np.uint8)
    return jpeg(out, quality)
