"""Geometry of flat pendants: bone teardrop, copper leaf, horn crescent (any pendant design)."""

from __future__ import annotations

import cv2
import numpy as np

from training.synth.sampling import PieceSpec
from training.synth.shape import Shape, Sheet, Wire


def _fit(poly: np.ndarray, length: float, width: float) -> np.ndarray:
    """Scale a shape (long axis along y) so its minimum-area rectangle is length x width."""
    for _ in range(3):
        (_, _), (w, h), _ = cv2.minAreaRect(poly.astype(np.float32))
        cur_l, cur_w = max(w, h), min(w, h)
        poly = poly * np.array([width / cur_w, length / cur_l])
    return poly - (poly.max(0) + poly.min(0)) / 2


def _teardrop(n: int = 160) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([np.sin(t) * np.abs(np.sin(t / 2)) ** 1.4, -np.cos(t)], 1)


def _leaf(n: int = 160) -> np.ndarray:
    t = np.linspace(-1, 1, n // 2)
    half = (1 - t**2) ** 0.85 * (1 + 0.25 * t)
    right = np.stack([half, t], 1)
    left = np.stack([-half[::-1], t[::-1]], 1)
    return np.concatenate([right, left])


def _crescent(n: int = 160) -> np.ndarray:
    t = np.linspace(-1, 1, n // 2)
    ang = t * 1.25
    centre = np.stack([np.sin(ang), -np.cos(ang)], 1)
    w = 0.42 * (1 - t**2) ** 0.75 + 0.02
    outer = centre * (1 + w / 2)[:, None]
    inner = centre * (1 - w / 2)[:, None]
    poly = np.concatenate([outer, inner[::-1]])
    return poly[:, ::-1] * np.array([1, 1])  # long axis (tip to tip) along y


def _circle(r: float, c: tuple[float, float], n: int = 32) -> np.ndarray:
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([c[0] + r * np.cos(a), c[1] + r * np.sin(a)], 1)


def build_pendant(spec: PieceSpec, rng: np.random.Generator) -> Shape:
    d = spec.design
    length, width = spec.dims["length"], spec.dims["width"]
    text = (d.name + " " + d.description).lower()
    if "leaf" in text:
        base, texture = _leaf(), "hammered"
    elif "crescent" in text or d.material == "horn":
        base, texture = _crescent(), "horn"
    else:
        base, texture = _teardrop(), "bone" if d.material == "bone" else "polished"
    if d.material == "bone":
        texture = "bone"
    poly = _fit(base * np.array([1.0, 1.0 + rng.uniform(-0.01, 0.01)]), length, width)
    s = Shape(texture=texture)
    top = poly[:, 1].min()
    # The cord hole sits where the piece is wide enough to keep a solid rim around it.
    at = 0.2 if texture == "bone" else 0.09
    hole = _circle(min(1.6, width * 0.08), (0.0, top + max(3.0, length * at)))
    if texture == "horn":
        # Drilled through the thick middle, near the convex edge, so it hangs horns up.
        mid = poly[np.abs(poly[:, 1]) < 2.0]
        tip_x = poly[np.argmax(np.abs(poly[:, 1])), 0]
        lo, hi = mid[:, 0].min(), mid[:, 0].max()
        outer = lo if abs(lo - tip_x) > abs(hi - tip_x) else hi
        hole = _circle(1.4, (float(outer + np.sign((lo + hi) / 2 - outer) * 3.2), 0.0))
    if "bent" in spec.defects:
        # Bent along its length: the lower half curls sideways.
        k = rng.uniform(0.06, 0.12) * (1 if rng.random() < 0.5 else -1)
        y = poly[:, 1] - top
        dx = k * np.clip(y - length * 0.45, 0, None) ** 2 / max(length, 1) * 3
        moved = np.abs(dx) > 0.4
        poly = poly + np.stack([dx, np.zeros_like(dx)], 1)
        s.region("bent", poly[moved], 3.0)
    s.prims.append(Sheet(poly, max(d.thickness_mm, 1.0), holes=(hole,), bevel=1.2))
    s.add_outline(poly)
    s.centrelines.append(np.stack([np.zeros(20), np.linspace(top + 6, top + length - 4, 20)], 1))
    if "leaf" in text:
        # Embossed veins on top of the sheet.
        ys = np.linspace(top + 5, top + length - 3, 24)
        vein = np.stack([np.zeros_like(ys), ys], 1)
        s.prims.append(Wire(vein, 0.45, z0=d.thickness_mm * 0.6, flat=0.5))
        for y0 in np.linspace(top + 9, top + length - 8, 5):
            half_w = np.interp(y0, poly[: len(poly) // 2, 1], poly[: len(poly) // 2, 0])
            for side in (-1, 1):
                v = np.array([[0, y0], [side * half_w * 0.7, y0 + length * 0.08]])
                s.prims.append(Wire(v, 0.35, z0=d.thickness_mm * 0.6, flat=0.5))
    return s
