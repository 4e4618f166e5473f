"""Geometry of strands laid as a loop: bead bracelets and necklaces, chains, and beaded collars."""

from __future__ import annotations

import numpy as np

from training.synth.sampling import PieceSpec
from training.synth.shape import CORD, Shape, Sphere, Wire, loop_curve, resample, rotate

# Loops are laid as ovals so long necklaces fit inside the mat's placement area.
_ASPECT = {"beaded_bracelet": 1.15, "chain_necklace": 1.45, "beaded_necklace": 1.75}


def _open_at(curve: np.ndarray, at: int, gap_mm: float, rng: np.random.Generator) -> np.ndarray:
    """Cut a closed curve at index `at`; the two loose ends pull apart by about `gap_mm`."""
    c = np.roll(curve, -at, axis=0)
    n = len(c)
    centre = c.mean(0)
    s = np.minimum(np.arange(n), n - 1 - np.arange(n)) / n  # 0 at the ends, 0.5 opposite
    fall = np.exp(-s / 0.06)[:, None]
    tangent = c[1] - c[-1]
    tangent /= np.linalg.norm(tangent)
    sign = np.where(np.arange(n) < n / 2, 1.0, -1.0)[:, None]
    out = c - centre
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    c = c + fall * (sign * tangent * gap_mm / 2 + out * rng.uniform(0, gap_mm / 2))
    return c


def build_strand(spec: PieceSpec, rng: np.random.Generator) -> Shape:
    d = spec.design
    comps = d.components
    assert comps is not None
    length = spec.dims["loop_length"]
    aspect = _ASPECT[d.piece_type] * (spec.aspect + rng.uniform(-0.08, 0.08))
    curve = loop_curve(length, aspect, 0.05, rng)
    n = comps.count
    pitch = length / n
    pts, _ = resample(curve, n * 24, closed=True)
    s = Shape(texture={"bone": "bone", "ceramic": "ceramic"}.get(d.material, "glass"))
    s.loop_length = length
    closed = True
    if "broken_link" in spec.defects:
        at = int(rng.integers(n)) * 24 + 12
        before = pts[at].copy()
        pts = _open_at(pts, at, pitch * rng.uniform(2.5, 4.0), rng)
        closed = False
        # The snapped cord pokes out a few mm past the last bead on each side.
        for end, nxt in ((pts[0], pts[1]), (pts[-1], pts[-2])):
            d_out = (end - nxt) / max(np.linalg.norm(end - nxt), 1e-6)
            d_out = rotate(d_out[None], rng.uniform(-0.6, 0.6))[0]
            tail = end + np.linspace(0, 1, 6)[:, None] * d_out * rng.uniform(3, 7)
            s.prims.append(Wire(tail, 0.45, CORD, flat=0.8))
            s.add_outline(tail, 0.5)
        s.region("broken_link", np.stack([pts[0], before, pts[-1]]), comps.size_mm * 0.8)
    missing = int(rng.integers(n)) if "missing_component" in spec.defects else -1
    s.prims.append(Wire(pts, 0.45, CORD, closed=closed, flat=0.8))
    s.add_outline(pts, 0.5)
    size_jit = 1 + 0.03 * rng.normal(size=n)
    start = 12 if not closed else 0
    for i in range(n):
        c = pts[(start + i * 24) % len(pts)]
        r = comps.size_mm / 2 * size_jit[i]
        if i == missing:
            s.region("missing_component", c[None], r * 1.05)
            continue
        squash = 0.8 if d.material == "bone" else 1.0
        s.prims.append(Sphere((float(c[0]), float(c[1])), r, comp=i, squash=squash, colour=i))
        s.add_outline(c[None], r)
    s.count = n - (1 if missing >= 0 else 0)
    s.centrelines.append(pts)
    return s


def build_chain(spec: PieceSpec, rng: np.random.Generator) -> Shape:
    d = spec.design
    comps = d.components
    assert comps is not None
    length = spec.dims["loop_length"]
    aspect = _ASPECT["chain_necklace"] * (spec.aspect + rng.uniform(-0.1, 0.1))
    n = comps.count
    pitch = length / n
    curve = loop_curve(length, aspect, 0.06, rng)
    pts, tan = resample(curve, n, closed=True)
    wr = d.thickness_mm / 2
    s = Shape(texture="polished")
    s.loop_length = length
    broken = -1
    if "broken_link" in spec.defects:
        # One link pried open and the chain fallen apart there: an open curve, the open link
        # hanging at one end.
        dense, _ = resample(curve, n * 16, closed=True)
        cut = int(rng.integers(n)) * 16 + 8
        before = dense[cut].copy()
        dense = _open_at(dense, cut, pitch * rng.uniform(1.5, 3.0), rng)
        pts, tan = dense[8::16], np.gradient(dense, axis=0)[8::16]
        tan /= np.linalg.norm(tan, axis=1, keepdims=True)
        broken = n - 1
        s.region("broken_link", np.stack([dense[0], before, dense[-1]]), pitch * 0.9)
    for i in range(n):
        c, t = pts[i], tan[i]
        ang = np.arctan2(t[1], t[0])
        # Links interlock: each reaches through the next, so their ends overlap.
        half_l = pitch * 0.5 + wr * 2.2
        flat = i % 2 == 0
        half_w = pitch * 0.32
        a = np.linspace(0, 2 * np.pi, 40, endpoint=False)
        oval = np.stack([half_l * np.cos(a), half_w * np.sin(a)], 1)
        if i == broken:
            # The pried-open link: a gap on one side, its end bent outwards.
            half_w = pitch * 0.32
            oval = np.stack([half_l * np.cos(a), half_w * np.sin(a)], 1)[8:]
            oval[-8:, 1] += np.linspace(0, pitch * 0.35, 8)
        closed = i != broken
        if not flat and i != broken:
            # Standing on edge, a link shows as a bar: its two sides line up under the camera.
            u = np.linspace(-(half_l - wr), half_l - wr, 12)
            oval = np.stack([u, np.zeros_like(u)], 1)
            closed = False
        link = rotate(oval, ang) + c
        z0 = 0.0 if flat else wr * 1.2
        s.prims.append(Wire(link, wr * (1.0 if flat else 1.1), closed=closed, comp=i, z0=z0))
        s.add_outline(link, wr)
        s.centrelines.append(link)  # scratches run along a link's wire
    s.count = n
    return s


# Maasai bead-band colours (CIELAB): red, white, blue, green, orange, yellow, black.
_MAASAI = [
    (42.5, 62.2, 38.9),
    (94.7, -0.7, 1.9),
    (33.0, 24.5, -57.4),
    (52.0, -45.0, 30.0),
    (62.0, 42.0, 65.0),
    (84.0, 2.0, 80.0),
    (18.0, 0.5, -1.0),
]


def build_collar(spec: PieceSpec, rng: np.random.Generator) -> Shape:
    d = spec.design
    outer = spec.dims["outer_diameter"] / 2
    width = min(d.thickness_mm, outer * 0.6)
    s = Shape(texture="collar")
    theta = np.linspace(0, 2 * np.pi, 360, endpoint=False)
    r = np.full_like(theta, outer)
    warp = 0.0
    if "bent" in spec.defects:
        warp = float(rng.uniform(0.06, 0.12))
        bump = np.exp(-((np.angle(np.exp(1j * (theta - rng.uniform(0, 6.28)))) / 0.5) ** 2))
        r = r * (1 - warp * bump)
        moved = warp * bump * outer > 0.6
        s.region("bent", np.stack([r * np.cos(theta), r * np.sin(theta)], 1)[moved], width * 0.6)
    pts = np.stack([r * np.cos(theta), r * np.sin(theta) / spec.aspect], 1)
    s.add_outline(pts)
    s.centrelines.append(pts * (1 - width / outer / 2))
    n_bands = max(3, round(width / 3.5))
    order = [0, 1, 2, 1, 0, 3, 4, 5, 6, 1, 0, 2]
    s.collar = {
        "outer": outer,
        "width": width,
        "bands": float(n_bands),
        "bead": width / n_bands,
        "aspect": spec.aspect,
        "slit": float(rng.uniform(0.04, 0.07)),
        "warp": warp,
    }
    s.collar_r = r
    s.bands = [_MAASAI[order[i % len(order)]] for i in range(n_bands)]
    return s
