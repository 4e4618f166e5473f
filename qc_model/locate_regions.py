"""Where locate.py looks for the piece and fits the paper: mat, bright card, or frame border."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from qc_model.mat import MatSpec

Mask = NDArray[np.uint8]

CARD_EDGE_MM = 3.0  # the card's cut edge is often a bright or dark rim
MARKER_QUIET_MM = 2.5  # around each marker: its blur and quiet zone are not the piece
# Without markers, the band of the card that holds them (34 mm of ~250 mm) is left out.
PAPER_BAND = 0.15
MIN_PAPER_FRACTION = 0.08


@dataclass(frozen=True)
class Regions:
    roi: Mask  # where a piece may be
    fit: Mask  # where the paper (background) model is fitted
    # Pixels off the card, and where connectivity to them is traced: a component joined to
    # the outside by differing pixels reaches in from beyond the card (fingers, clutter).
    outside: Mask | None
    connect: Mask | None
    px_per_mm: float | None  # on the work grid, when known
    quadratic: bool  # a curved light model is safe only when the fit region covers the frame


def mat_regions(
    mat_to_work: NDArray[np.float64], spec: MatSpec, shape: tuple[int, int], px_per_mm: float
) -> Regions:
    """The card minus its markers and printed border, mapped into the work grid."""

    def quad(inset: float) -> NDArray[np.int32]:
        return box(inset, inset, spec.width_mm - inset, spec.height_mm - inset)

    def box(x0: float, y0: float, x1: float, y1: float) -> NDArray[np.int32]:
        pts = np.array([[[x0, y0]], [[x1, y0]], [[x1, y1]], [[x0, y1]]], np.float64)
        return np.round(cv2.perspectiveTransform(pts, mat_to_work)).astype(np.int32)

    roi = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(roi, quad(CARD_EDGE_MM), 255)
    outside: Mask = 255 - roi
    for marker_id in spec.marker_origins_mm:
        c = spec.marker_corners_mm(marker_id)
        (x0, y0), (x1, y1) = c.min(axis=0) - MARKER_QUIET_MM, c.max(axis=0) + MARKER_QUIET_MM
        cv2.fillConvexPoly(roi, box(x0, y0, x1, y1), 0)
    # The printed dotted border of the placement area is ink, not piece; it must not link a
    # piece to fingers touching the same line either.
    line = np.zeros(shape, np.uint8)
    cv2.polylines(line, [box(*spec.placement_area_mm)], True, 255, max(1, round(1.2 * px_per_mm)))
    not_line: Mask = 255 - line
    roi &= not_line
    return Regions(roi, roi, outside, not_line, px_per_mm, quadratic=True)


def paper_regions(lab: NDArray[np.float32], spec: MatSpec) -> Regions | None:
    """Without markers: the card as the largest bright region, its marker band left out."""
    h, w = lab.shape[:2]
    light = np.clip(lab[..., 0] * 2.55, 0, 255).astype(np.uint8)
    _, bright = cv2.threshold(light, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    lo, hi = light[bright == 0], light[bright > 0]
    dark_fraction = lo.size / light.size
    # A card shows as a bright region against a darker surround of some size; a dark piece
    # on paper filling the frame must not be taken for the surround.
    if dark_fraction < 0.12 or hi.size == 0 or float(hi.mean()) - float(lo.mean()) < 40:
        # No bright card against a darker surround: the frame is (mostly) one surface,
        # paper close up or a table without a card. Model it all; the fit rejects the piece.
        full = np.full((h, w), 255, np.uint8)
        return Regions(full, full, None, None, None, quadratic=True)
    bright = cv2.morphologyEx(bright, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(bright, connectivity=4)
    if n <= 1:
        return None
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if stats[k, cv2.CC_STAT_AREA] < MIN_PAPER_FRACTION * h * w:
        return None
    paper = np.where(labels == k, 255, 0).astype(np.uint8)
    # Holes (pieces, markers) belong to the card; notches from its edge (fingers) do not.
    contours, _ = cv2.findContours(paper, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    card = np.zeros_like(paper)
    cv2.drawContours(card, contours, -1, 255, cv2.FILLED)
    area = float(cv2.countNonZero(card))
    # The frame's edge is not the card's edge: extend the card past the frame before
    # measuring how far each pixel is from the card's edge.
    pad = max(h, w)
    padded = cv2.copyMakeBorder(card, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    clipped = bool(card[0].any() or card[-1].any() or card[:, 0].any() or card[:, -1].any())
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, 3)[pad:-pad, pad:-pad]
    band = PAPER_BAND * np.sqrt(area)
    roi = np.where(dist > band, 255, 0).astype(np.uint8)
    if cv2.countNonZero(roi) < 0.02 * h * w:
        return None
    fit: Mask = roi & paper
    card_mm2 = spec.width_mm * spec.height_mm
    px_per_mm = None if clipped else float(np.sqrt(area / card_mm2))
    return Regions(roi, fit, None, None, px_per_mm, quadratic=True)


def border_regions(h: int, w: int) -> Regions:
    """Last resort: the frame's border is background, anything else may be the piece."""
    band = np.zeros((h, w), np.uint8)
    t = max(2, round(0.04 * min(h, w)))
    band[:t] = band[-t:] = 255
    band[:, :t] = band[:, -t:] = 255
    return Regions(np.full((h, w), 255, np.uint8), band, None, None, None, quadratic=False)
