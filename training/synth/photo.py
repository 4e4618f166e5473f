"""One photo of one physical piece, end to end: sample, place, frame, render, label."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from qc_model.catalog import Design
from qc_model.color import delta_e_2000
from qc_model.mat import DEFAULT_MAT
from qc_model.taxonomy import CAPTURE_CONDITIONS
from training.synth.camera import local_scale
from training.synth.capture import sample_conditions
from training.synth.optics import capture_frame
from training.synth.placement import frame_camera, item_outline, jitter, place_item
from training.synth.render import build_shape
from training.synth.sampling import Item, sample_item
from training.synth.scene import compose


@dataclass
class Photo:
    image: NDArray[np.uint8]
    labels: list[str]
    masks: dict[str, NDArray[np.bool_]]
    piece_mask: NDArray[np.bool_]
    capture: list[str]
    meta: dict[str, Any]


def spec_labels(item: Item, dims: list[dict[str, float]]) -> dict[str, list[int]]:
    """Spec defects from the truth, and which pieces carry them (wrong size, colour, pair)."""
    d = item.design
    out: dict[str, list[int]] = {}
    for i, (piece, dd) in enumerate(zip(item.pieces, dims, strict=True)):
        tol = {x.measure: x for x in d.dimensions}
        if any(abs(v - tol[m].nominal_mm) > tol[m].tolerance_mm for m, v in dd.items()):
            out.setdefault("wrong_size", []).append(i)
        if float(delta_e_2000(piece.lab, d.finish.lab)) > d.finish.delta_e_tolerance:
            out.setdefault("wrong_finish_colour", []).append(i)
    if len(item.pieces) == 2:
        a, b = item.pieces
        size_off = any(
            abs(dims[0][x.measure] - dims[1][x.measure]) > x.tolerance_mm for x in d.dimensions
        )
        colour_off = float(delta_e_2000(a.lab, b.lab)) > d.finish.delta_e_tolerance
        if size_off or colour_off or item.shape_mismatch:
            out["mismatched_pair"] = [1]
    return out


def _under_piece(
    markers: list[int], hom: NDArray[np.float64], piece_mask: NDArray[np.bool_]
) -> set[int]:
    """Markers that a piece lies on (a 170 mm collar overflows the placement area)."""
    h, w = piece_mask.shape
    out = set()
    for mid in markers:
        corners = DEFAULT_MAT.marker_corners_mm(mid).reshape(-1, 1, 2)
        quad = cv2.perspectiveTransform(corners, hom).reshape(-1, 2)
        x0, y0 = np.clip(np.floor(quad.min(0)).astype(int), 0, (w, h))
        x1, y1 = np.clip(np.ceil(quad.max(0)).astype(int) + 1, 0, (w, h))
        sub = piece_mask[y0:y1, x0:x1]
        inside = np.zeros(sub.shape, np.uint8)
        cv2.fillConvexPoly(inside, np.round(quad - (x0, y0)).astype(np.int32), 1)
        if (sub & (inside > 0)).any():
            out.add(mid)
    return out


def make_item(design: Design, seed: int, piece: int, defect_rate: float) -> Item:
    return sample_item(design, np.random.default_rng([seed, piece, 0]), defect_rate)


def render_photo(
    item: Item,
    seed: int,
    piece: int,
    shot: int,
    size: int,
    difficulty: float,
    force: tuple[str, ...] = (),
) -> Photo:
    """Photo number `shot` of physical piece `piece`; every draw seeded from those numbers.

    `meta` (the manifest record's ground truth) holds:
      pieces: one entry per piece (two for a pair, left to right as laid): index, dims_mm
        (true size per design measure), component_count (beads/stones/links present, None if
        the design has none), finish_lab (colour used, CIELAB), delta_e (CIEDE2000 to the
        design's finish), bbox_px ([x0, y0, x1, y1) in the image, None if out of frame),
        defects (of this piece);
      px_per_mm: image scale around the piece; mat_to_image: 3x3 homography from mat mm to
        image px (pixel centres at integers; the table plane's when the mat is absent);
      mat_visible; markers_in_frame (ids wholly in frame and not covered by fingers);
      markers_occluded; hidden_defects (the piece's defects not visible in this photo, so
      not labeled); defect_px (mask area per label); item_defects (what the sampler meant
      to create); background; jpeg_quality.
    generate.py adds piece_mask (PNG of where the pieces are) and shot.
    """
    rng = np.random.default_rng([seed, piece, 1000 + shot])
    placements = place_item(item, np.random.default_rng([seed, piece, 1]))
    if shot > 0:
        placements = jitter(placements, rng)
    cond = sample_conditions(rng, difficulty, force)
    frame_wh = (size, round(size * 3 / 4))
    shapes = [build_shape(p) for p in item.pieces]
    outline = item_outline(shapes, placements)
    hom = frame_camera(cond, frame_wh, outline, rng)
    frame = compose(item, placements, hom, frame_wh, cond, rng, mat="no_mat" not in cond.applied)
    image, hom = capture_frame(frame.image, frame.mat_to_image, cond, rng)
    h, w = image.shape[:2]

    def fit(m: NDArray[np.bool_]) -> NDArray[np.bool_]:
        if m.shape == (h, w):
            return m
        return cv2.resize(m.astype(np.uint8) * 255, (w, h), interpolation=cv2.INTER_AREA) > 60

    piece_masks = [fit(m) for m in frame.piece_masks]
    masks = {k: fit(v) for k, v in frame.defect_masks.items()}
    dims = [layer.dims for layer in frame.layers]
    for label, idx in spec_labels(item, dims).items():
        masks[label] = np.logical_or.reduce([piece_masks[i] for i in idx])
    hidden = sorted(k for k, v in masks.items() if not v.any())
    masks = {k: v for k, v in masks.items() if v.any()}

    applied = set(cond.applied)
    applied.discard("mat_cut_off")
    applied.discard("partly_out_of_frame")
    if "clutter" in applied and frame.clutter == 0:
        applied.discard("clutter")
    if frame.mat_visible and len(frame.markers_in_frame) < 8:
        applied.add("mat_cut_off")
    if frame.in_frame_fraction < 0.97:
        applied.add("partly_out_of_frame")
    capture = [c for c in CAPTURE_CONDITIONS if c in applied]

    pieces_meta = []
    for i, (spec, layer, pm) in enumerate(zip(item.pieces, frame.layers, piece_masks, strict=True)):
        ys, xs = np.nonzero(pm)
        bbox = (
            [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
            if len(xs)
            else None
        )
        pieces_meta.append(
            {
                "index": i,
                "dims_mm": {k: round(v, 3) for k, v in layer.dims.items()},
                "component_count": layer.count,
                "finish_lab": [round(v, 3) for v in spec.lab],
                "delta_e": round(float(delta_e_2000(spec.lab, item.design.finish.lab)), 3),
                "bbox_px": bbox,
                "defects": sorted(spec.defects),
            }
        )
    centre = outline.mean(0)
    piece_mask = np.logical_or.reduce(piece_masks)
    occluded = sorted(
        set(frame.occluded_markers) | _under_piece(frame.markers_in_frame, hom, piece_mask)
    )
    meta: dict[str, Any] = {
        "pieces": pieces_meta,
        "px_per_mm": round(local_scale(hom, (float(centre[0]), float(centre[1]))), 4),
        "mat_visible": frame.mat_visible,
        # Wholly inside the frame, and not covered by the artisan's fingers or the piece.
        "markers_in_frame": [m for m in frame.markers_in_frame if m not in occluded],
        "markers_occluded": occluded,
        "mat_to_image": [[float(f"{v:.8g}") for v in row] for row in hom.tolist()],
        "hidden_defects": hidden,
        # Mask area per label: a scratch of 12 px under heavy blur may be there but unseeable.
        "defect_px": {k: int(v.sum()) for k, v in sorted(masks.items())},
        "background": cond.background,
        "jpeg_quality": cond.jpeg,
        "item_defects": sorted(item.intended),
    }
    return Photo(image, sorted(masks), masks, piece_mask, capture, meta)
