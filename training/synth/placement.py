"""Where the artisan lays the piece on the mat, and where the phone points."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qc_model.mat import DEFAULT_MAT
from training.synth.camera import H3, plane_to_image, project
from training.synth.capture import Conditions
from training.synth.render import build_shape
from training.synth.sampling import Item
from training.synth.shape import Shape, rotate


@dataclass(frozen=True)
class Placement:
    angle: float  # radians, piece frame -> mat frame
    centre: tuple[float, float]  # mm on the mat

    def matrix(self) -> H3:
        c, s = np.cos(self.angle), np.sin(self.angle)
        return np.array([[c, -s, self.centre[0]], [s, c, self.centre[1]], [0, 0, 1]], np.float64)

    def to_mat(self, pts: np.ndarray) -> np.ndarray:
        return rotate(pts, self.angle) + np.asarray(self.centre)


def place_item(item: Item, rng: np.random.Generator) -> list[Placement]:
    """Lay the piece (or the pair, side by side) inside the mat's placement area."""
    shapes = [build_shape(p) for p in item.pieces]
    x0, y0, x1, y1 = DEFAULT_MAT.placement_area_mm
    long = item.design.piece_type in {"beaded_necklace", "chain_necklace"}
    # Long strands go along the card's long side; small pieces land at any angle.
    angles = [float(rng.uniform(-0.2, 0.2) if long else rng.uniform(0, 2 * np.pi)) for _ in shapes]
    outlines = [rotate(s.outline, a) for s, a in zip(shapes, angles, strict=True)]
    offsets = [np.zeros(2)]
    if len(outlines) == 2:
        gap = rng.uniform(6, 16)
        right_shift = outlines[0][:, 0].max() - outlines[1][:, 0].min() + gap
        offsets = [np.zeros(2), np.array([right_shift, rng.uniform(-3, 3)])]
    group = np.concatenate([o + off for o, off in zip(outlines, offsets, strict=True)])
    lo, hi = group.min(0), group.max(0)
    free_x = (x1 - x0) - (hi[0] - lo[0])
    free_y = (y1 - y0) - (hi[1] - lo[1])
    ox = x0 - lo[0] + (rng.uniform(0, free_x) if free_x > 0 else free_x / 2)
    oy = y0 - lo[1] + (rng.uniform(0, free_y) if free_y > 0 else free_y / 2)
    return [
        Placement(a, (float(ox + off[0]), float(oy + off[1])))
        for a, off in zip(angles, offsets, strict=True)
    ]


def jitter(placements: list[Placement], rng: np.random.Generator) -> list[Placement]:
    """The same pieces nudged a little between two photos."""
    d = rng.normal(0, 1.5, 2)
    da = rng.normal(0, 0.03)
    return [Placement(p.angle + da, (p.centre[0] + d[0], p.centre[1] + d[1])) for p in placements]


def item_outline(shapes: list[Shape], placements: list[Placement]) -> np.ndarray:
    return np.concatenate([p.to_mat(s.outline) for s, p in zip(shapes, placements, strict=True)])


def frame_camera(
    cond: Conditions,
    frame: tuple[int, int],
    outline_mm: np.ndarray,
    rng: np.random.Generator,
) -> H3:
    """Aim the phone: framing, distance, roll and tilt from the capture conditions."""
    w, h = frame
    centre = (outline_mm.min(0) + outline_mm.max(0)) / 2
    scale = cond.fill * w / DEFAULT_MAT.width_mm
    target = (DEFAULT_MAT.width_mm / 2, DEFAULT_MAT.height_mm / 2)
    if "distance_near" in cond.applied or "partly_out_of_frame" in cond.applied:
        target = (float(centre[0]), float(centre[1]))
    off = (cond.offset[0] * w, cond.offset[1] * h)
    args = (frame, target, scale, cond.roll, cond.tilt, cond.tilt_az)
    hom = plane_to_image(*args, off)
    framed = not cond.applied & {"distance_near", "partly_out_of_frame", "mat_cut_off"}
    if framed:
        # An artisan who turns the phone still frames the whole card: step back until it fits.
        card = np.array(
            [
                [0, 0],
                [DEFAULT_MAT.width_mm, 0],
                [DEFAULT_MAT.width_mm, DEFAULT_MAT.height_mm],
                [0, DEFAULT_MAT.height_mm],
            ]
        )
        for _ in range(12):
            p = project(hom, card)
            if p.min() >= 0.01 * w and p[:, 0].max() < 0.99 * w and p[:, 1].max() < h - 0.01 * w:
                break
            scale *= 0.93
            cond.fill *= 0.93
            hom = plane_to_image(frame, target, scale, cond.roll, cond.tilt, cond.tilt_az, off)
    if "distance_near" in cond.applied:
        # Close-ups keep the piece in frame: shrink the fill until it fits (or nearly).
        for _ in range(8):
            p = project(hom, outline_mm)
            if p.min() >= 0 and p[:, 0].max() < w and p[:, 1].max() < h:
                break
            scale *= 0.9
            cond.fill *= 0.9
            hom = plane_to_image(frame, target, scale, cond.roll, cond.tilt, cond.tilt_az, off)
    if "partly_out_of_frame" in cond.applied:
        p = project(hom, outline_mm)
        span = p.max(0) - p.min(0)
        axis = int(rng.integers(2))
        sign = rng.choice([-1, 1])
        move = np.zeros(2)
        # Push the piece over one edge so that 15-45 % of its extent is cut off.
        edge = (w, h)[axis]
        cut = rng.uniform(0.15, 0.45) * span[axis]
        if sign > 0:
            move[axis] = edge - (p[:, axis].max() - cut)
        else:
            move[axis] = -(p[:, axis].min() + cut)
        off = (off[0] + move[0], off[1] + move[1])
        hom = plane_to_image(frame, target, scale, cond.roll, cond.tilt, cond.tilt_az, off)
    elif "mat_cut_off" in cond.applied:
        corners = np.array([[0, 0], [DEFAULT_MAT.width_mm, DEFAULT_MAT.height_mm]])
        pm = project(hom, corners)
        axis = int(rng.integers(2))
        sign = rng.choice([-1, 1])
        size = abs(pm[1, axis] - pm[0, axis])
        for frac in (0.3, 0.2, 0.12, 0.07):
            move = np.zeros(2)
            move[axis] = sign * rng.uniform(0.6, 1.0) * frac * size
            off2 = (off[0] + move[0], off[1] + move[1])
            cand = plane_to_image(frame, target, scale, cond.roll, cond.tilt, cond.tilt_az, off2)
            q = project(cand, outline_mm)
            if q.min() >= 0 and q[:, 0].max() < w and q[:, 1].max() < h:
                hom = cand
                break
    return hom
