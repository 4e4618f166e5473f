"""Geometry of round metal pieces: hoop earrings, rings, studs and open cuffs."""

from __future__ import annotations

import numpy as np

from training.synth.sampling import PieceSpec
from training.synth.shape import SETTING, Shape, Sheet, Sphere, Wire, rotate


def _circle(radius: float, n: int = 48, c: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([c[0] + radius * np.cos(a), c[1] + radius * np.sin(a)], 1)


def _dent(theta: np.ndarray, rng: np.random.Generator, depth: float) -> tuple[np.ndarray, float]:
    """Inward radial dent (fraction of radius) centred at a random angle, and that angle."""
    t0 = rng.uniform(0, 2 * np.pi)
    w = rng.uniform(0.25, 0.5)
    d = np.angle(np.exp(1j * (theta - t0)))
    return depth * np.exp(-((d / w) ** 2)), t0


def _ring_path(
    spec: PieceSpec, radius: float, rng: np.random.Generator, shape: Shape
) -> np.ndarray:
    """Centre-line of a round band: slightly out of round, dented when bent."""
    theta = np.linspace(0, 2 * np.pi, 360, endpoint=False)
    r = np.full_like(theta, radius)
    r *= 1 + 0.004 * np.cos(3 * theta + rng.uniform(0, 6.28))
    if "bent" in spec.defects:
        dent, _ = _dent(theta, rng, rng.uniform(0.1, 0.2))
        r *= 1 - dent
        moved = dent * radius > 0.35
        shape.region("bent", np.stack([r * np.cos(theta), r * np.sin(theta)], 1)[moved], 2.5)
    x = r * np.cos(theta)
    y = r * np.sin(theta) / spec.aspect
    return np.stack([x, y], 1)


def build_hoop(spec: PieceSpec, rng: np.random.Generator) -> Shape:
    d = spec.design
    wr = d.thickness_mm / 2
    s = Shape(texture="hammered" if "hammered" in d.description.lower() else "polished")
    path = _ring_path(spec, spec.dims["outer_diameter"] / 2 - wr, rng, s)
    # The catch sits at the top (angle -90 degrees = index 270 of 360).
    path = np.roll(path, -270, axis=0)
    if "broken_link" in spec.defects:
        gap = int(rng.integers(8, 16))
        open_path = path[gap // 2 : len(path) - gap // 2].copy()
        # The free end springs outward.
        k = np.linspace(0, 1, len(open_path)) ** 6
        open_path += k[:, None] * open_path / np.linalg.norm(open_path[-1]) * rng.uniform(2, 4)
        s.prims.append(Wire(open_path, wr))
        s.region("broken_link", np.stack([open_path[0], open_path[-1], path[0]]), 2.5 + wr)
        s.centrelines.append(open_path)
        s.add_outline(open_path, wr)
    else:
        s.prims.append(Wire(path, wr, closed=True))
        # Ear wire with its small catch loop.
        top = path[0]
        s.prims.append(
            Wire(_circle(1.1, 16, (top[0], top[1] + 0.3)), wr * 0.45, closed=True, z0=wr)
        )
        s.centrelines.append(path)
        s.add_outline(path, wr)
    return s


def build_ring(spec: PieceSpec, rng: np.random.Generator) -> Shape:
    d = spec.design
    band = d.thickness_mm
    outer = spec.dims["outer_diameter"] / 2
    s = Shape(texture="hammered" if "hammered" in d.description.lower() else "polished")
    path = _ring_path(spec, outer - band / 2, rng, s)
    s.prims.append(Wire(path, band / 2, closed=True, flat=0.55))
    s.centrelines.append(path)
    s.add_outline(path, band / 2)
    if d.components is not None:
        sr = d.components.size_mm / 2
        bezel = sr + 0.8
        c = (0.0, -(outer - bezel))
        s.prims.append(Sheet(_circle(bezel, 48, c), 1.2, SETTING, bevel=0.5, z0=band * 0.3))
        s.prims.append(Wire(_circle(sr + 0.25, 48, c), 0.45, closed=True, z0=band * 0.3 + 1.0))
        if "missing_component" in spec.defects:
            s.region("missing_component", np.array([c]), sr)
            s.count = 0
        else:
            s.prims.append(Sphere(c, sr, comp=0, z0=band * 0.3 + 0.6, squash=0.6))
            s.count = 1
    return s


def build_stud(spec: PieceSpec, rng: np.random.Generator) -> Shape:
    d = spec.design
    rad = spec.dims["outer_diameter"] / 2
    disc = _circle(rad, 96)
    disc[:, 1] /= spec.aspect
    disc *= 1 + 0.01 * rng.normal(size=(len(disc), 1)).cumsum(0) / 10
    s = Shape(texture="hammered" if "hammered" in d.description.lower() else "polished")
    s.prims.append(Sheet(disc, max(d.thickness_mm, 0.8), bevel=0.6))
    s.add_outline(disc)
    s.centrelines.append(disc * 0.6)
    if d.components is not None:
        sr = min(d.components.size_mm / 2, rad - 0.6)
        s.prims.append(Wire(_circle(sr + 0.2, 48), 0.35, closed=True, z0=d.thickness_mm))
        if "missing_component" in spec.defects:
            s.prims.append(Sheet(_circle(sr, 48), 0.2, SETTING, bevel=0.1, z0=0.3))
            s.region("missing_component", np.zeros((1, 2)), sr)
            s.count = 0
        else:
            s.prims.append(Sphere((0.0, 0.0), sr, comp=0, z0=d.thickness_mm * 0.5, squash=0.55))
            s.count = 1
    return s


def build_cuff(spec: PieceSpec, rng: np.random.Generator) -> Shape:
    outer = spec.dims["outer_diameter"] / 2
    band = min(4.5, outer * 0.15)  # rim seen from above, a little tilted: part of the face shows
    gap = rng.uniform(0.55, 0.8)  # opening, radians each side of the bottom
    theta = np.linspace(np.pi / 2 + gap, np.pi / 2 + 2 * np.pi - gap, 240)
    r_out = np.full_like(theta, outer)
    s = Shape(texture="etched")
    if "bent" in spec.defects:
        # One arm squeezed inwards, as if the cuff was forced onto a narrow wrist.
        u = (theta - theta[0]) / (theta[-1] - theta[0])
        side = u if rng.random() < 0.5 else 1 - u
        push = rng.uniform(0.1, 0.18) * np.clip((side - 0.6) / 0.4, 0, 1) ** 1.5
        r_out = r_out * (1 - push)
        moved = push * outer > 0.4
        pts = np.stack([r_out * np.cos(theta), r_out * np.sin(theta)], 1)
        s.region("bent", pts[moved], band + 1.5)
    outer_pts = np.stack([r_out * np.cos(theta), r_out * np.sin(theta)], 1)
    inner_pts = outer_pts * ((r_out - band) / r_out)[:, None]
    poly = np.concatenate([outer_pts, inner_pts[::-1]])
    poly[:, 1] /= spec.aspect
    outer_pts[:, 1] /= spec.aspect
    s.prims.append(Sheet(poly, 1.2, bevel=1.0))
    s.add_outline(outer_pts)
    s.centrelines.append((outer_pts + inner_pts) / 2)
    return s


def place_pair(left: Shape, right: Shape, gap: float) -> tuple[float, float]:
    """x offsets that lay two earrings side by side with `gap` mm between them."""
    lb, rb = left.bounds(0), right.bounds(0)
    return -(lb[2] + gap / 2), -rb[0] + gap / 2


__all__ = ["build_cuff", "build_hoop", "build_ring", "build_stud", "place_pair", "rotate"]
