"""Measure a piece on the calibration mat: its mask re-cut for measuring, sizes in mm.

Outline points are mapped through the mat homography to millimetres before any measuring, so a
phone held at an angle does not shorten one axis of the piece.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from numpy.typing import NDArray

from qc_model.catalog import Design
from qc_model.mat import MatDetection

# Where an edge is cut, as a fraction of the way from the paper's colour to the piece's. Half-way
# is exact for a symmetric blur; soft shadows and highlights skew it: 0.55 cut the median
# outer-diameter bias from +2.2 % to +1.4 % on synthetic photos (seed 4; seed 2 agreed).
EDGE_LEVEL = 0.55


@dataclass
class PieceGeometry:
    """One piece of the photo (a pair has two): its mask in image px and its sizes in mm."""

    mask: NDArray[np.uint8]
    dims: dict[str, float] = field(default_factory=dict)


def outer_points_mm(mask: NDArray[np.uint8], mat: MatDetection) -> NDArray[np.float64]:
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return np.empty((0, 2))
    pts = np.concatenate([c.reshape(-1, 2) for c in contours]).astype(np.float64)
    return mat.to_mat(pts)


def split_pieces(mask: NDArray[np.uint8], n: int) -> list[NDArray[np.uint8]]:
    """The n largest connected parts; smaller specks join whichever part is nearest."""
    # Labelled on the mask's box only: the frame can be 12 MP, the piece a small part of it.
    x, y, w, h = cv2.boundingRect(mask)
    if w == 0 or h == 0:
        return []
    count, labels, stats, centroids = cv2.connectedComponentsWithStats(
        mask[y : y + h, x : x + w], connectivity=8
    )
    order = sorted(range(1, count), key=lambda i: -stats[i, cv2.CC_STAT_AREA])
    if n <= 1 or len(order) < n:
        return [mask] if count > 1 else []
    heads = order[:n]
    owner = {h: h for h in heads}
    for i in order[n:]:
        owner[i] = min(heads, key=lambda h: float(np.hypot(*(centroids[i] - centroids[h]))))
    parts = []
    for head in heads:
        part = np.zeros_like(mask)
        members = [i for i, o in owner.items() if o == head]
        part[y : y + h, x : x + w] = np.where(np.isin(labels, members), 255, 0).astype(np.uint8)
        parts.append(part)
    return parts


def measurement_mask(image_bgr: NDArray[np.uint8], mask: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """The piece's mask re-cut for measuring: where the photo is at least about half-way
    (EDGE_LEVEL) from the paper's colour to the piece's typical colour.

    Segmentation keeps faint edge pixels and soft shadows so that no part of a piece is lost;
    that inflates every size by a few pixels (+9.6 % median on 10-65 mm pieces, docs/CHECKS.md).
    The half-way level is where a blurred edge truly lies. Lightness counts half, as in
    qc_model.locate, so shade on the paper weighs less than colour.
    """
    bx, by, bw, bh = cv2.boundingRect(mask)  # one pass, not np.nonzero's index arrays
    pad = 12
    y0, x0 = max(0, by - pad), max(0, bx - pad)
    y1, x1 = min(mask.shape[0], by + bh + pad), min(mask.shape[1], bx + bw + pad)
    m = mask[y0:y1, x0:x1]
    if bw == 0 or cv2.countNonZero(m) < 20:
        return mask
    k3 = np.ones((3, 3), np.uint8)
    near = cv2.dilate(m, k3, iterations=8) > 0
    paper_zone = near & ~(cv2.dilate(m, k3, iterations=4) > 0)
    if paper_zone.sum() < 30:
        return mask
    # Every pixel looked at below lies within 8 px of the mask: colours are converted there
    # only (a chain's box is mostly paper far from it), as one row. Per pixel the same numbers.
    flat = np.flatnonzero(near)  # row-major, as boolean indexing orders them
    bgr = image_bgr[y0:y1, x0:x1].reshape(-1, 3)[flat].reshape(1, -1, 3)
    lab = cv2.cvtColor(np.divide(bgr, np.float32(255.0), dtype=np.float32), cv2.COLOR_BGR2Lab)
    lab = lab.reshape(-1, 3)
    paper = np.median(lab[paper_zone[near]], axis=0)
    delta = lab - paper
    delta *= np.array([0.5, 1.0, 1.0], np.float32)
    diff = np.zeros(m.shape, np.float32)
    diff.flat[flat] = np.sqrt((delta * delta).sum(axis=1))
    on_paper = diff[paper_zone]
    centre = float(np.median(on_paper))
    noise = centre + 4.0 * 1.4826 * float(np.median(np.abs(on_paper - centre)))
    core = cv2.erode(m, k3) > 0
    if core.sum() < 10:
        core = m > 0
    level = max(noise, EDGE_LEVEL * float(np.median(diff[core])))
    zone = cv2.dilate(m, k3, iterations=2) > 0
    cut = (zone & (diff >= level)).astype(np.uint8) * 255
    # Keep only parts that overlap the segmentation: a crumb beside the piece is not the piece.
    n, labels, stats, _ = cv2.connectedComponentsWithStats(cut, connectivity=8)
    keep = np.zeros(n, bool)
    keep[labels[(m > 0) & (cut > 0)]] = True
    keep &= stats[:, cv2.CC_STAT_AREA] >= 6
    keep[0] = False
    out = mask.copy()
    out[y0:y1, x0:x1] = np.where(keep, 255, 0).astype(np.uint8)[labels]
    return out


def piece_dimensions(
    mask: NDArray[np.uint8],
    mat: MatDetection,
    measures: Sequence[str],
    smooth_mm: float = 2.0,
) -> dict[str, float]:
    """Requested measures (catalog `Measure` names) of one piece, in mm."""
    pts = outer_points_mm(mask, mat)
    if len(pts) < 3:
        return {}
    # No half-pixel added for the contour running through boundary pixel centres: extreme points
    # set an enclosing circle or rectangle, and along an edge that is not axis-aligned some
    # boundary centre lies almost on the true edge.
    hull = cv2.convexHull(pts.astype(np.float32))
    out: dict[str, float] = {}
    if "outer_diameter" in measures:
        _, radius = cv2.minEnclosingCircle(hull)
        out["outer_diameter"] = 2.0 * float(radius)
    if "length" in measures or "width" in measures:
        (_, _), (w, h), _ = cv2.minAreaRect(hull)
        out["length"] = max(w, h)
        out["width"] = min(w, h)
    if "loop_length" in measures:
        loop = loop_length_mm(mask, mat, smooth_mm)
        if loop is not None:
            out["loop_length"] = loop
    return {k: float(v) for k, v in out.items() if k in measures}


def _smoothed_perimeter(contour_mm: NDArray[np.float64], window_mm: float) -> float:
    """Perimeter of a closed curve after a moving average that irons out pixel steps and beads."""
    pts = contour_mm
    seg = np.linalg.norm(np.diff(pts, axis=0, append=pts[:1]), axis=1)
    step = float(np.median(seg)) or 1e-6
    k = int(min(len(pts) // 3, max(1, round(window_mm / step))))
    if k > 1:
        kernel = np.ones(k) / k
        padded = np.concatenate([pts[-k:], pts, pts[:k]])
        pts = np.stack([np.convolve(padded[:, i], kernel, "same") for i in range(2)], 1)[k:-k]
    return float(np.linalg.norm(np.diff(pts, axis=0, append=pts[:1]), axis=1).sum())


def loop_length_mm(mask: NDArray[np.uint8], mat: MatDetection, smooth_mm: float) -> float | None:
    """Centre-line length of a strand laid as a closed loop: the mean of the smoothed outer and
    inner outline lengths; a strand that encloses nothing counts as half its outline.

    Links seen edge-on, pale beads and thin cord leave gaps that cut the strand into pieces, so
    the mask is closed over a growing part of a component's size (`smooth_mm`) until the loop
    closes: 0.3 closes most strands, white beads on the card need 0.5; every extra bridge
    shortens chains a little (-2 % at 0.5 on 10 mm links), hence the smallest that works.
    """
    half_outline = None
    radii = [max(1, round(b * smooth_mm * mat.px_per_mm)) for b in (0.3, 0.5, 0.7)]
    # The piece's box with room for the widest closing: the frame itself can be 12 MP.
    x, y, w, h = cv2.boundingRect(mask)
    pad = radii[-1] + 2
    crop = cv2.copyMakeBorder(mask[y : y + h, x : x + w], pad, pad, pad, pad, cv2.BORDER_CONSTANT)
    to_piece = np.asarray(cv2.distanceTransform(255 - crop, cv2.DIST_L2, 5), np.float32)
    shift = np.array([x - pad, y - pad], np.int32)
    for r in radii:
        closed = close_by_distance(to_piece, r)
        contours, hierarchy = cv2.findContours(
            closed, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE, offset=tuple(int(v) for v in shift)
        )
        if not contours:
            return None
        outer_i = max(
            (i for i in range(len(contours)) if hierarchy[0][i][3] < 0),
            key=lambda i: cv2.contourArea(contours[i]),
        )
        outer = mat.to_mat(contours[outer_i].reshape(-1, 2).astype(np.float64))
        p_out = _smoothed_perimeter(outer, smooth_mm)
        half_outline = half_outline or 0.5 * p_out
        holes = [i for i in range(len(contours)) if hierarchy[0][i][3] == outer_i]
        if holes:
            inner_i = max(holes, key=lambda i: cv2.contourArea(contours[i]))
            inner = mat.to_mat(contours[inner_i].reshape(-1, 2).astype(np.float64))
            # A hole under a tenth of the outline's area is a gap between beads, not the loop.
            if _area(inner) > 0.1 * _area(outer):
                return 0.5 * (p_out + _smoothed_perimeter(inner, smooth_mm))
    return half_outline


def close_by_distance(to_piece: NDArray[np.float32], radius: int) -> NDArray[np.uint8]:
    """Morphological closing with a disc of `radius` px from the distance to the piece: two
    distance transforms cost the same whatever the radius (a disc's dilation grows with it)."""
    grown = np.where(to_piece <= radius, 255, 0).astype(np.uint8)
    inside = cv2.distanceTransform(grown, cv2.DIST_L2, 5)
    return np.where(inside > radius, 255, 0).astype(np.uint8)


def _area(pts: NDArray[np.float64]) -> float:
    return float(abs(cv2.contourArea(pts.astype(np.float32))))


def measure_pieces(
    mask: NDArray[np.uint8], mat: MatDetection, design: Design
) -> list[PieceGeometry]:
    """Each piece of the design (two for a pair) with its sizes in mm.

    Pieces of a pair also get `width` (short side of the min-area rectangle): an oval earring
    beside a round one has the same enclosing circle but not the same width.
    """
    measures = [d.measure for d in design.dimensions]
    if design.pair and "width" not in measures:
        measures.append("width")
    smooth = design.components.size_mm if design.components else 2.0 * design.thickness_mm
    pieces = split_pieces(mask, 2 if design.pair else 1)
    return [PieceGeometry(m, piece_dimensions(m, mat, measures, smooth)) for m in pieces]


def disc(radius_px: float) -> NDArray[np.uint8]:
    r = max(1, round(radius_px))
    return np.asarray(
        cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)), np.uint8
    )


def rectify_mask(
    mask: NDArray[np.uint8], mat: MatDetection, px_per_mm: float
) -> NDArray[np.uint8] | None:
    """The mask resampled onto the mat plane at a fixed scale, cropped to the piece."""
    pts = outer_points_mm(mask, mat)
    if len(pts) < 3:
        return None
    pad = 2.0
    x0, y0 = pts.min(axis=0) - pad
    x1, y1 = pts.max(axis=0) + pad
    w, h = int(np.ceil((x1 - x0) * px_per_mm)), int(np.ceil((y1 - y0) * px_per_mm))
    if w * h > 4e6:
        return None
    dst_to_mm = np.array([[1 / px_per_mm, 0, x0], [0, 1 / px_per_mm, y0], [0, 0, 1]])
    dst_to_src = mat.mat_to_image() @ dst_to_mm
    out = cv2.warpPerspective(
        mask, dst_to_src, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    )
    return np.where(out >= 128, 255, 0).astype(np.uint8)
