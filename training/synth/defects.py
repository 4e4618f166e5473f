"""Surface defects on a piece's canvas (scratch, tarnish, pitting, finish flaw) and their masks."""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from training.synth.raster import Canvas, Material
from training.synth.shape import BODY, Region, Shape, Sheet
from training.synth.surface import value_noise

# Each function returns its defect's binary mask on the canvas. Geometry defects (missing
# component, broken link, bent) are built into the shape and arrive here as regions in mm.

Mask = NDArray[np.bool_]


def _label_rng(seed: int, label: str) -> np.random.Generator:
    return np.random.default_rng([seed, sum(ord(c) * (i + 1) for i, c in enumerate(label))])


def _variant(canvas: Canvas, base: int, spec_scale: float, shin_scale: float) -> int:
    m = canvas.materials[base]
    return canvas.add_material(
        Material(m.albedo, m.metal, m.spec * spec_scale, max(2.0, m.shininess * shin_scale))
    )


def rasterise(canvas: Canvas, regions: list[Region]) -> Mask:
    out = np.zeros((canvas.h_px, canvas.w), np.uint8)
    for reg in regions:
        p = np.round(canvas.to_px(reg.pts) * 16).astype(np.int32)
        r = max(1, round(reg.radius * canvas.k))
        if len(p) == 1:
            cv2.circle(out, tuple(int(v) for v in p[0]), r * 16, 255, -1, cv2.LINE_8, shift=4)
        else:
            for q in p:
                cv2.circle(out, (int(q[0]), int(q[1])), r * 16, 255, -1, cv2.LINE_8, shift=4)
            cv2.polylines(out, [p.reshape(-1, 1, 2)], False, 255, 2 * r, cv2.LINE_8, shift=4)
    return out > 0


def _scratch_paths(shape: Shape, body: Mask, canvas: Canvas, rng: np.random.Generator):
    """Where scratches run: along a wire, or in any direction across a plate."""
    plate = any(isinstance(p, Sheet) and p.role == BODY for p in shape.prims)
    if plate:
        ys, xs = np.nonzero(body)
        if len(xs) == 0:
            return
        i = int(rng.integers(len(xs)))
        start = np.array([xs[i], ys[i]]) / canvas.k + (canvas.x0, canvas.y0)
        ang = rng.uniform(0, np.pi)
        length = rng.uniform(4, 14)
        t = np.linspace(-0.5, 0.5, 24)[:, None] * length
        bend = rng.normal(0, 0.04) * (t**2)
        d = np.array([np.cos(ang), np.sin(ang)])
        yield start + t * d + bend * d[::-1] * (1, -1)
        return
    path = shape.centrelines[int(rng.integers(len(shape.centrelines)))]
    seg_len = int(rng.integers(6, max(7, min(len(path), 40))))
    first = int(rng.integers(max(1, len(path) - seg_len)))
    seg = path[first : first + seg_len].copy()
    if len(seg) >= 2:
        yield seg + rng.normal(0, 0.12, size=2)


def scratch(canvas: Canvas, shape: Shape, body: Mask, seed: int, min_width_mm: float) -> Mask:
    """A few fine, slightly wandering lines in the surface; bright where they catch the light."""
    rng = _label_rng(seed, "scratch")
    lines = np.zeros((canvas.h_px, canvas.w), np.uint8)
    width = max(1, round(0.1 * canvas.k))
    for _ in range(int(rng.integers(1, 4))):
        for seg in _scratch_paths(shape, body, canvas, rng):
            # A scratch is a bundle of 1-3 hairlines, each wandering by a few hundredths of a mm.
            for _ in range(int(rng.integers(1, 4))):
                hair = seg + rng.normal(0, 0.04, size=seg.shape) + rng.normal(0, 0.08, size=2)
                p = np.round(canvas.to_px(hair) * 16).astype(np.int32).reshape(-1, 1, 2)
                cv2.polylines(lines, [p], False, 255, width, cv2.LINE_AA, shift=4)
    a = (lines.astype(np.float32) / 255.0) * body
    bright = rng.random() < 0.6
    target = np.float32(1.0) if bright else np.float32(0.1)
    canvas.albedo += (target - canvas.albedo) * (rng.uniform(0.55, 0.8) * a)[..., None]
    canvas.height -= 0.02 * a
    grow = max(1, round(min_width_mm * canvas.k / 2))
    return cv2.dilate((a > 0.2).astype(np.uint8), np.ones((2 * grow + 1,) * 2, np.uint8)) > 0


def tarnish(canvas: Canvas, body: Mask, seed: int, body_mat: int, metal: str) -> Mask:
    """Dull dark patches (green on copper, grey-white bloom on aluminium)."""
    rng = _label_rng(seed, "tarnish")
    field = value_noise(canvas, (4.0, 4.0), rng) + 0.5 * value_noise(canvas, (1.5, 1.5), rng)
    thr = rng.uniform(0.3, 0.6)
    a = np.clip((field - thr) * 2.5, 0, 1) * body
    if a.max() <= 0.3:  # too little fell on a thin wire: widen the patch
        a = np.clip((field - thr + 0.5) * 2.5, 0, 1) * body
    colour = {
        "copper": (0.05, 0.12, 0.08),
        "aluminium": (0.16, 0.16, 0.15),
    }.get(metal, (0.06, 0.05, 0.025))
    strength = rng.uniform(0.55, 0.85)
    canvas.albedo += (np.asarray(colour, np.float32) - canvas.albedo) * (strength * a)[..., None]
    dull = _variant(canvas, body_mat, 0.25, 0.3)
    canvas.mat[(a > 0.35) & body] = dull
    return a > 0.3


def pitting(canvas: Canvas, shape: Shape, body: Mask, seed: int, min_width_mm: float) -> Mask:
    """A cluster of small pits: dark holes a fraction of a millimetre wide."""
    rng = _label_rng(seed, "pitting")
    ys, xs = np.nonzero(body)
    if len(xs) == 0:
        return np.zeros_like(body)
    i = int(rng.integers(len(xs)))
    centre = np.array([xs[i], ys[i]], np.float64)
    pits = np.zeros((canvas.h_px, canvas.w), np.float32)
    for _ in range(int(rng.integers(6, 16))):
        off = rng.normal(0, 1.5 * canvas.k, size=2)
        r = rng.uniform(0.12, 0.3) * canvas.k
        c = centre + off
        cv2.circle(
            pits, (int(c[0] * 16), int(c[1] * 16)), max(1, int(r * 16)), 1.0, -1, cv2.LINE_AA, 4
        )
    pits *= body
    canvas.height -= 0.15 * pits
    canvas.albedo *= (1 - 0.7 * pits)[..., None]
    grow = max(1, round(max(min_width_mm, 0.4) * canvas.k))
    return cv2.dilate((pits > 0.3).astype(np.uint8), np.ones((2 * grow + 1,) * 2, np.uint8)) > 0


def finish_flaw(canvas: Canvas, body: Mask, seed: int, body_mat: int) -> Mask:
    """Uneven plating or polish: a matte, off-colour patch (plating worn through, glaze crawl)."""
    rng = _label_rng(seed, "finish_flaw")
    field = value_noise(canvas, (5.0, 5.0), rng)
    a = np.clip((field - rng.uniform(0.25, 0.5)) * 3, 0, 1) * body
    if a.max() <= 0.3:
        a = np.clip((field + 0.3) * 3, 0, 1) * body
    # Plating worn through to the copper or nickel beneath, or a dull unpolished patch.
    under = np.array(
        rng.choice([[0.35, 0.12, 0.06], [0.3, 0.3, 0.3], [0.55, 0.45, 0.25]]), np.float32
    )  # linear RGB, like the canvas albedo
    canvas.albedo += (under - canvas.albedo) * (rng.uniform(0.45, 0.7) * a)[..., None]
    matte = _variant(canvas, body_mat, 0.15, 0.25)
    canvas.mat[(a > 0.3) & body & (canvas.mat == body_mat)] = matte
    return a > 0.3
