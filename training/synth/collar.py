"""The Maasai beaded collar: concentric bands of seed beads, drawn procedurally on the canvas."""

from __future__ import annotations

import numpy as np

from training.synth.raster import Canvas
from training.synth.sampling import PieceSpec
from training.synth.shape import COMP, Shape
from training.synth.surface import lab_linear


def draw_collar(canvas: Canvas, shape: Shape, spec: PieceSpec, roles: dict[str, int]) -> None:
    """Rows of round seed beads between the (possibly bent) outer edge and the neck opening."""
    c = shape.collar
    assert c is not None and shape.collar_r is not None
    xs = (np.arange(canvas.w, dtype=np.float32) + 0.5) / canvas.k + canvas.x0
    ys = (np.arange(canvas.h_px, dtype=np.float32) + 0.5) / canvas.k + canvas.y0
    xx, yy = np.meshgrid(xs, ys * c["aspect"])
    rho = np.hypot(xx, yy)
    # Work only on the ring of pixels that can hold beads (the neck opening is most of the box).
    sel = np.nonzero((rho < c["outer"] * 1.02) & (rho > c["outer"] - c["width"] - 1))
    xx, yy, rho = xx[sel], yy[sel], rho[sel]
    phi = np.arctan2(yy, xx)
    deg = (np.degrees(phi) % 360).astype(np.float32)
    r_out = np.interp(deg, np.arange(361), np.append(shape.collar_r, shape.collar_r[0]))
    depth = r_out - rho  # mm in from the outer edge
    bead = c["bead"]
    inside = (depth > 0) & (depth < c["width"])
    # The slit at the back (bottom) where the collar opens to go round the neck.
    inside &= np.abs(np.angle(np.exp(1j * (phi - np.pi / 2)))) >= c["slit"]
    band = np.clip((depth // bead).astype(np.int32), 0, len(shape.bands) - 1)
    v = depth / bead - band - 0.5
    arc = phi * (r_out - (band + 0.5) * bead)
    u = arc / bead - np.round(arc / bead)
    # Each seed bead is a small dome; neighbours touch, so the band reads as a row of bumps.
    h = 0.5 * bead * np.sqrt(np.clip(1 - 4 * (u * u + v * v) * 0.9, 0.05, 1))
    shift = np.asarray(spec.lab) - np.asarray(spec.design.finish.lab)
    cols = np.array([lab_linear(np.asarray(b) + shift) for b in shape.bands], np.float32)
    edge = np.clip(np.minimum(depth, c["width"] - depth) * canvas.k + 0.5, 0, 1)
    idx = (sel[0][inside], sel[1][inside])
    canvas.height[idx] = h[inside]
    canvas.albedo[idx] = cols[band[inside]]
    canvas.mat[idx] = roles[COMP]
    canvas.cover[idx] = np.maximum(canvas.cover[idx], edge[inside])
