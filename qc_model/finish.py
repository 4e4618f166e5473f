"""Finish colour of a piece: white balance on the mat's paper, lightness-matched CIEDE2000."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from numpy.typing import NDArray

from qc_model.color import _linear_to_srgb, _srgb_to_linear, delta_e_2000, lab_to_rgb, rgb_to_lab
from qc_model.mat import DEFAULT_MAT, MatDetection

# Colour sampling: stay this far (mm) inside the piece (edge pixels mix with the paper) and
# take the paper from a ring this far outside it (beyond the piece's contact shadow).
INSET_MM, RING_IN_MM, RING_OUT_MM = 0.4, 3.0, 12.0
MAX_SAMPLES = 20000
# Pixels darker than this (L*) are deep shade: their hue is noise, so colour checks skip them.
DARK_L = 8.0


def _sample(pixels: NDArray[np.uint8]) -> NDArray[np.uint8]:
    step = max(1, len(pixels) // MAX_SAMPLES)
    return pixels[::step]


def balanced_piece_colours(
    image_bgr: NDArray[np.uint8],
    mask: NDArray[np.uint8],
    mat: MatDetection,
    *,
    inset_mm: float = INSET_MM,
    sample: bool = True,
) -> tuple[NDArray[np.float64], NDArray[np.intp]] | None:
    """Lab of (a sample of) the piece's pixels after white-balancing on the mat's paper, as
    (Lab of each distinct pixel colour (K, 3), index of each pixel's colour (N,)).

    The paper's printed colour is known, so the per-channel gain that turns the observed paper
    back into it removes both the light's colour cast and the exposure. Gains apply in linear
    light, where a colour cast is a per-channel multiplication.

    Every step from a pixel's 8-bit colour to its ΔE00 depends on that colour alone, and a
    piece holds two to four times fewer distinct colours than pixels: callers compute per
    colour and expand with the index (`values[inverse]`), the same numbers for less work.
    """
    inner, ring, (x0, y0) = piece_and_ring(mask, mat.px_per_mm, inset_mm)
    crop = image_bgr[y0 : y0 + inner.shape[0], x0 : x0 + inner.shape[1]]
    piece_px = crop[inner]
    paper_px = crop[ring]
    if len(piece_px) < 20 or len(paper_px) < 50:
        return None
    # The median keeps shadows, the dotted print line and stray crumbs out of the paper estimate.
    paper_obs = _srgb_to_linear(np.median(_sample(paper_px), axis=0)[::-1] / 255.0)
    paper_true = _srgb_to_linear(np.asarray(DEFAULT_MAT.paper_rgb, np.float64) / 255.0)
    gain = paper_true / np.maximum(paper_obs, 1e-4)
    if sample:
        piece_px = _sample(piece_px)
    colours, inverse = distinct_colours(piece_px)
    rgb = _srgb_to_linear(colours[:, ::-1].astype(np.float64) / 255.0) * gain
    return rgb_to_lab(_linear_to_srgb(rgb) * 255.0), inverse


def distinct_colours(pixels: NDArray[np.uint8]) -> tuple[NDArray[np.uint8], NDArray[np.intp]]:
    """The distinct rows of `pixels` (N, 3) and, per pixel, the index of its row."""
    p = pixels.astype(np.int32)
    keys, inverse = np.unique((p[:, 0] << 16) | (p[:, 1] << 8) | p[:, 2], return_inverse=True)
    colours = np.stack([keys >> 16, (keys >> 8) & 255, keys & 255], axis=1).astype(np.uint8)
    return colours, inverse.reshape(-1)


def piece_and_ring(
    mask: NDArray[np.uint8], ppm: float, inset_mm: float = INSET_MM
) -> tuple[NDArray[np.bool_], NDArray[np.bool_], tuple[int, int]]:
    """Piece pixels `inset_mm` inside the mask and the paper ring around it, on a crop of the
    frame (its top-left corner is returned) that holds both.

    Distance transforms instead of erosion and dilation with discs: their cost does not grow
    with the disc (a 12 mm ring at 9 px/mm took 0.8 s per photo as a dilation at 12 MP).
    """
    x, y, w, h = cv2.boundingRect(mask)
    pad = int(np.ceil(RING_OUT_MM * ppm)) + 2
    x0, y0 = max(0, x - pad), max(0, y - pad)
    x1, y1 = min(mask.shape[1], x + w + pad), min(mask.shape[0], y + h + pad)
    m = mask[y0:y1, x0:x1]
    # Radii rounded as `disc` rounds them, so the regions match the morphology they replace.
    to_piece = cv2.distanceTransform(np.where(m > 0, 0, 255).astype(np.uint8), cv2.DIST_L2, 5)
    near = to_piece <= max(1, round(RING_IN_MM * ppm))
    ring = (to_piece <= max(1, round(RING_OUT_MM * ppm))) & ~near
    inner = m > 0
    if inset_mm > 0:
        to_paper = cv2.distanceTransform(m, cv2.DIST_L2, 5)
        eroded = to_paper > max(1, round(inset_mm * ppm))
        if np.count_nonzero(eroded) >= 20:
            inner = eroded
    return inner, ring, (x0, y0)


_LUMA = np.array([0.2126, 0.7152, 0.0722])  # linear sRGB -> relative luminance Y


def match_lightness(lab: NDArray[np.float64], target: Sequence[float]) -> NDArray[np.float64]:
    """Each colour rescaled in linear light to the target's luminance: hue and chroma stay.

    How light a curved, shiny piece looks depends on what it reflects and how it is shaded,
    not on its finish: measured on synthetic photos, comparing lightness too sent 71 % of
    correct metal pieces over the colour tolerance (docs/CHECKS.md).
    """
    return match_lightness_each(lab, [target])[0]


def match_lightness_each(
    lab: NDArray[np.float64], targets: Sequence[Sequence[float]]
) -> list[NDArray[np.float64]]:
    """`match_lightness(lab, t)` for each target; `lab` goes to linear light once for all."""
    lin = _srgb_to_linear(np.clip(lab_to_rgb(lab), 0, 255) / 255.0)
    y = np.maximum(lin @ _LUMA, 1e-4)
    out = []
    for target in targets:
        y_target = float(_srgb_to_linear(np.clip(lab_to_rgb(target), 0, 255) / 255.0) @ _LUMA)
        scaled = lin * (y_target / y)[..., None]
        out.append(rgb_to_lab(_linear_to_srgb(scaled) * 255.0))
    return out


def _hued_piece_colours(
    image_bgr: NDArray[np.uint8], mask: NDArray[np.uint8], mat: MatDetection
) -> tuple[NDArray[np.float64], NDArray[np.intp]] | None:
    """White-balanced Lab colours of the piece and the index of each pixel's colour, keeping only
    pixels that carry hue (near-black ones do not); None when too few are left to judge."""
    found = balanced_piece_colours(image_bgr, mask, mat)
    if found is None:
        return None
    lab, inverse = found
    inverse = inverse[lab[inverse, 0] > DARK_L]
    return (lab, inverse) if len(inverse) >= 20 else None


def finish_colour_lab(
    image_bgr: NDArray[np.uint8],
    mask: NDArray[np.uint8],
    mat: MatDetection,
    target: Sequence[float],
) -> NDArray[np.float64] | None:
    """The piece's robust colour at the target's lightness: per-channel median of its
    white-balanced, lightness-matched Lab pixels (near-black pixels carry no hue and are left out).
    """
    found = _hued_piece_colours(image_bgr, mask, mat)
    if found is None:
        return None
    lab, inverse = found
    return np.median(match_lightness(lab, target)[inverse], axis=0)


def palette_delta_e(
    image_bgr: NDArray[np.uint8],
    mask: NDArray[np.uint8],
    mat: MatDetection,
    palette: list[tuple[float, float, float]],
) -> float | None:
    """Median over the piece's pixels of the ΔE00 to the nearest palette colour (each compared
    at that colour's lightness): small when the piece is made of the design's colours."""
    found = _hued_piece_colours(image_bgr, mask, mat)
    if found is None:
        return None
    lab, inverse = found
    matched = match_lightness_each(lab, palette)
    de = np.stack([delta_e_2000(m, p) for m, p in zip(matched, palette, strict=True)], axis=1)
    return float(np.median(de.min(axis=1)[inverse]))
