"""Count a piece's components on the mat: beads by distance-transform peaks, stones by colour."""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from qc_model.catalog import Components
from qc_model.color import delta_e_2000, rgb_to_lab
from qc_model.finish import DARK_L, balanced_piece_colours, match_lightness_each
from qc_model.mat import DEFAULT_MAT, MatDetection
from qc_model.measure import disc, rectify_mask

# A stone pixel is within this ΔE00 of the stone's colour after white balance.
STONE_DELTA_E = 20.0
# Components closer than this to the card's colour are invisible to the piece mask.
PAPER_LIKE_DELTA_E = 6.0


def count_components(
    image_bgr: NDArray[np.uint8],
    mask: NDArray[np.uint8],
    mat: MatDetection,
    components: Components,
) -> int | None:
    """How many beads, stones or links the piece shows; None when it cannot be counted."""
    size = components.size_mm
    if components.kind == "stone":
        return _count_stones(image_bgr, mask, mat, components)
    # Links are not counted: in a chain every second link lies edge-on and shows no opening, so
    # a photo from above cannot tell one link from two. A missing link shortens the loop, which
    # the loop-length check measures; a broken one is the model's `broken_link` class.
    if components.kind != "bead" or _paper_like(components):
        return None
    # Twelve pixels across a component separate neighbours reliably (eight gave spurious peaks).
    scale = 12.0 / size
    flat = rectify_mask(mask, mat, scale)
    if flat is None:
        return None
    # Each bead is a local maximum of the distance to the strand's edge; the neck where two
    # beads touch is a saddle. Neighbours sit one bead apart, so a 0.8-bead window sees one.
    dist = cv2.distanceTransform(flat, cv2.DIST_L2, 5)
    peaks = (dist >= cv2.dilate(dist, disc(0.4 * size * scale))) & (dist >= 0.35 * size * scale)
    n, _ = cv2.connectedComponents(cv2.dilate(peaks.astype(np.uint8), disc(1)))
    return n - 1


def _paper_like(components: Components) -> bool:
    """Whether some component colour cannot be told from the card (white beads): the piece mask
    then has gaps where those beads lie, and counting its beads would miss them."""
    if not components.colours:
        return False
    paper = rgb_to_lab(np.asarray(DEFAULT_MAT.paper_rgb, np.float64))
    de = delta_e_2000(np.asarray(components.colours, np.float64), paper)
    return bool((de < PAPER_LIKE_DELTA_E).any())


def _count_stones(
    image_bgr: NDArray[np.uint8],
    mask: NDArray[np.uint8],
    mat: MatDetection,
    components: Components,
) -> int | None:
    """Blobs of the stone's colour (white-balanced) at least a third of a stone's area."""
    if not components.colours:
        return None
    ys, xs = np.nonzero(mask)
    if len(xs) < 20:
        return None
    found = balanced_piece_colours(image_bgr, mask, mat, inset_mm=0.0, sample=False)
    if found is None:
        return None
    lab, inverse = found  # per distinct colour, and each pixel's colour
    # Lightness-matched like the finish check: a stone's facets range from glint to shade.
    lit = (lab[:, 0] > DARK_L)[inverse]
    matched = match_lightness_each(lab, components.colours)
    de = np.stack([delta_e_2000(m, c) for m, c in zip(matched, components.colours, strict=True)], 1)
    de = de[inverse]
    # On the piece's box only (plus a border for the opening): the frame can be 12 MP.
    pad = 2
    y0, x0 = max(0, int(ys.min()) - pad), max(0, int(xs.min()) - pad)
    close = np.zeros((int(ys.max()) + pad + 1 - y0, int(xs.max()) + pad + 1 - x0), np.uint8)
    close[ys - y0, xs - x0] = ((de.min(axis=1) < STONE_DELTA_E) & lit).astype(np.uint8) * 255
    opened = cv2.morphologyEx(
        close, cv2.MORPH_OPEN, disc(0.15 * components.size_mm * mat.px_per_mm)
    )
    _, _, stats, _ = cv2.connectedComponentsWithStats(opened, connectivity=8)
    stone_px = np.pi * (components.size_mm * mat.px_per_mm / 2) ** 2
    return int((stats[1:, cv2.CC_STAT_AREA] >= stone_px / 3).sum())
