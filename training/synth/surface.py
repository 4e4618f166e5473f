"""Materials and surface textures: hammered or brushed metal, bone grain, horn streaks, glaze."""

from __future__ import annotations

import cv2
import numpy as np

from qc_model.color import lab_to_rgb
from training.synth.raster import F32, Canvas, Material, srgb_to_linear
from training.synth.sampling import PieceSpec
from training.synth.shape import BODY, COMP, CORD, SETTING

_BODY = {
    "brass": (True, 0.9, 70.0),
    "copper": (True, 0.9, 70.0),
    "aluminium": (True, 0.6, 35.0),
    "bone": (False, 0.12, 10.0),
    "horn": (False, 0.7, 80.0),
    "glass": (False, 1.0, 150.0),
    "ceramic": (False, 0.6, 60.0),
    "mixed": (False, 0.3, 30.0),
}


def lab_linear(lab: tuple[float, float, float] | np.ndarray) -> tuple[float, float, float]:
    """Linear RGB (0..1) of a CIELAB colour: what a surface facing the camera shows."""
    srgb = lab_to_rgb(np.asarray(lab, np.float64)) / 255.0
    lin = srgb_to_linear(srgb)
    return (float(lin[0]), float(lin[1]), float(lin[2]))


def materials(spec: PieceSpec, canvas: Canvas) -> dict[str, int]:
    """Register the piece's materials on the canvas; role -> material index."""
    d = spec.design
    metal, spec_k, shin = _BODY[d.material]
    if "satin" in d.finish.name or "brushed" in d.finish.name:
        spec_k, shin = spec_k * 0.7, shin * 0.45
    body = lab_linear(spec.lab)
    roles = {BODY: canvas.add_material(Material(body, metal, spec_k, shin))}
    dark = tuple(0.45 * c for c in body)
    roles[SETTING] = canvas.add_material(Material(dark, metal, spec_k * 0.5, shin))  # type: ignore[arg-type]
    comp_mat = d.material if d.components is None or d.components.kind != "stone" else "glass"
    if d.piece_type in {"ring", "stud_earring"}:
        comp_mat = "glass"
    m, k, s = _BODY[comp_mat]
    first = spec.comp_labs[0] if spec.comp_labs else spec.lab
    glow = 0.6 if comp_mat == "glass" else 0.0
    roles[COMP] = canvas.add_material(Material(lab_linear(first), m, k, s, glow))
    roles[CORD] = canvas.add_material(Material(lab_linear((28.0, 3.0, 6.0)), False, 0.05, 8.0))
    return roles


def value_noise(canvas: Canvas, cell_mm: tuple[float, float], rng: np.random.Generator) -> F32:
    """Smooth noise in -1..1 whose features have a fixed size in mm, whatever the scale."""
    w_mm, h_mm = canvas.w / canvas.k, canvas.h_px / canvas.k
    gw = max(2, int(np.ceil(w_mm / cell_mm[0])) + 2)
    gh = max(2, int(np.ceil(h_mm / cell_mm[1])) + 2)
    grid = rng.uniform(-1, 1, size=(gh, gw)).astype(np.float32)
    return cv2.resize(grid, (canvas.w, canvas.h_px), interpolation=cv2.INTER_CUBIC)


def hammer_marks(canvas: Canvas, rng: np.random.Generator, size_mm: float = 1.8) -> F32:
    """Hammer facets: shallow round dimples packed edge to edge (a height offset in mm)."""
    w_mm, h_mm = canvas.w / canvas.k, canvas.h_px / canvas.k
    n = int(w_mm * h_mm / (size_mm * size_mm)) + 1
    pts = rng.uniform(0, 1, size=(n, 2)) * (w_mm, h_mm)
    seeds = np.full((canvas.h_px, canvas.w), 255, np.uint8)
    px = np.clip((pts * canvas.k).astype(np.int32), 0, (canvas.w - 1, canvas.h_px - 1))
    seeds[px[:, 1], px[:, 0]] = 0
    d = cv2.distanceTransform(seeds, cv2.DIST_L2, 5) / canvas.k  # mm to the nearest blow
    return (0.06 * np.minimum(d / size_mm, 1.0) ** 2).astype(np.float32)


def apply_texture(canvas: Canvas, texture: str, roles: dict[str, int], seed: int) -> None:
    """Bumps and colour variation of the piece's own surface (not defects)."""
    rng = np.random.default_rng([seed, 7])
    body = (canvas.mat == roles[BODY]) & (canvas.cover > 0)
    comp = (canvas.mat == roles[COMP]) & (canvas.cover > 0)
    if texture == "hammered":
        canvas.add_bump(hammer_marks(canvas, rng), body)
    elif texture == "polished":
        canvas.add_bump(0.012 * value_noise(canvas, (3.0, 3.0), rng), body)
    elif texture == "etched":
        canvas.add_bump(0.01 * value_noise(canvas, (0.08, 4.0), rng), body)
        xs, ys = np.meshgrid(
            np.arange(canvas.w) / canvas.k + canvas.x0,
            np.arange(canvas.h_px) / canvas.k + canvas.y0,
        )
        ang = np.arctan2(ys, xs)
        rad = np.hypot(xs, ys)
        # Hand-etched chevrons around the band: dark where the acid bit into the brass.
        line = np.abs(np.sin(ang * 60 + np.sin(rad * 1.7) * 2.0)) < 0.22
        canvas.albedo[body & line] *= 0.45
    elif texture == "bone":
        mottle = value_noise(canvas, (2.5, 2.5), rng)
        canvas.albedo[body | comp] *= (1 + 0.06 * mottle[body | comp])[:, None]
        xs = np.arange(canvas.w) / canvas.k + canvas.x0
        ys = np.arange(canvas.h_px) / canvas.k + canvas.y0
        xx, yy = np.meshgrid(xs, ys)
        # Etched lines: a hatched pattern cut into the surface and darkened with use.
        etch = (np.abs(np.sin((yy + 0.4 * np.abs(xx)) * 1.3)) < 0.07) & body
        canvas.albedo[etch] *= np.array([0.55, 0.5, 0.45], np.float32)
        canvas.add_bump(-0.08 * etch.astype(np.float32), etch)
    elif texture == "horn":
        streak = value_noise(canvas, (0.5, 6.0), rng)
        light = srgb_to_linear(np.array([0.42, 0.30, 0.2], np.float32))
        a = np.clip(streak * 1.3 - 0.3, 0, 1)[..., None] * 0.6
        canvas.albedo[:] = np.where(
            body[..., None], canvas.albedo * (1 - a) + light * a, canvas.albedo
        )
    elif texture == "ceramic":
        canvas.add_bump(0.02 * value_noise(canvas, (1.0, 1.0), rng), comp)


def paint_beads(
    canvas: Canvas,
    centres: list[tuple[int, float, float, float]],
    palette: list[tuple[float, float, float]],
    seed: int,
) -> None:
    """Hand-painted Kazuri beads: each gets stripes or dots in a second glaze colour."""
    rng = np.random.default_rng([seed, 11])
    for comp_id, cx, cy, r in centres:
        win = canvas._window(np.array([[cx, cy]]), r)
        if win is None:
            continue
        xa, ya, xb, yb = win
        xs, ys = canvas.grid_mm(win)
        u, v = xs - cx, ys - cy
        own = canvas.comp[ya:yb, xa:xb] == comp_id
        other = palette[int(rng.integers(len(palette)))]
        colour = np.array(lab_linear(other), np.float32)
        if rng.random() < 0.5:
            pat = np.abs(np.sin((u * np.cos(cy) + v * np.sin(cy)) / r * 4.5)) > 0.8
        else:
            pat = np.hypot(np.mod(u, r * 0.7) - r * 0.35, np.mod(v, r * 0.7) - r * 0.35) < r * 0.13
        sel = own & pat
        canvas.albedo[ya:yb, xa:xb][sel] = colour
