"""A photo's fingerprint, to recognise one photo sent again for another piece (serving.fingerprints
stores and looks them up): robust to re-encoding, resizing, small crops and rotations, EXIF
stripping and brightness changes.

Everything is measured in the calibration mat's own frame: the mat's homography (found by the
photo gate) maps the card's placement area to fixed grids, so a crop, rotation or resize of the
photo changes nothing there but resampling noise. Two parts:

- `phash`, 64 bits: the DCT hash (8 x 8 lowest frequencies, each bit one coefficient above or
  below their median: blind to contrast and to JPEG's high-frequency losses) of how much darker
  than the paper around it each cell of the placement area is. Dividing by the paper's level
  removes the light's gradient and the photo's brightness; leaving out what is brighter than
  the paper leaves out what a brightened copy clips to white. Cells of the area outside the
  photo (a mat cut off by the frame) count as paper: rectified, they would hold the photo's
  edge smeared outwards, different in every copy. It is what the index looks up.
- `cells`: where something differs from the paper (the piece) on a 64 x 40 grid of the area
  (~3.6 mm cells). Two photos of one piece design laid the same way can share a hash; a copy
  has the piece on the very same cells.

Two fingerprints are one photo (`same_photo`) when the hashes are within MATCH_BITS and, where
measured, the piece cells overlap. (A paper-tint check was tried and dropped: brightening a
photo clips white paper, and the tint of what is left moved more than between two photos.)
Without a mat with two markers (a photo the gate refuses anyway) only the hash of the whole
photo is taken, which survives re-encoding and resizing only.

Pure numpy / OpenCV, about a millisecond per photo beside the gate (docs/BENCHMARKS.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from qc_model.gate import GateResult
from qc_model.mat import DEFAULT_MAT, MatDetection, MatSpec

HASH_BITS = 64
GRID = 32  # the area is resampled to GRID x GRID for the hash
LOW = 8  # the hash keeps the LOW x LOW lowest frequencies (the DC term replaced by (0, LOW))
CELLS_W, CELLS_H = 64, 40  # the piece grid over the placement area
CELLS_INSET_MM = 4.0  # keeps the area's dotted border out of the piece grid
# A cell is "piece" where it differs from the paper around it by this fraction, or by this many
# times the grid's own noise (median absolute deviation), whichever is more.
PIECE_CONTRAST, NOISE_K = 0.10, 6.0
# A grid with fewer piece cells than MIN_PIECE_CELLS, or more than MAX_PIECE_FRACTION of them
# (noise, not a piece), is not used to verify.
MIN_PIECE_CELLS = 4
MAX_PIECE_FRACTION = 0.25
MAX_SUPERSAMPLE = 6  # samples per cell side when rectifying
PAPER_SIGMA = 5.0  # cells: the blur that gives the paper's level around each cell
# The frames a hash is taken in: the mat's ("mat2": the second hash, darker-than-paper; the
# first, "mat", hashed the grey level itself) or the whole photo's. Hashes of two frames are
# never one photo.
FRAME_MAT, FRAME_PHOTO = "mat2", "photo"

# One photo: hashes within MATCH_BITS of 64, piece cells overlapping by at least MIN_OVERLAP
# (each grid's cells that touch the other's, the smaller of the two fractions). Chosen on
# rendered photos (docs/CHECKS.md, "Reused photos").
MATCH_BITS = 8
MIN_OVERLAP = 0.6


@dataclass(frozen=True)
class Fingerprint:
    phash: int  # unsigned 64-bit
    frame: str  # FRAME_MAT (rectified) or FRAME_PHOTO (no usable mat)
    cells: tuple[int, ...] | None = field(default=None)  # piece cells, row-major; None: unknown

    @property
    def hex(self) -> str:
        return f"{self.phash:016x}"

    def as_json(self) -> dict[str, Any]:
        return {
            "phash": self.hex,
            "frame": self.frame,
            "cells": list(self.cells) if self.cells is not None else None,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Fingerprint:
        cells = doc.get("cells")
        return cls(
            phash=int(doc["phash"], 16),
            frame=str(doc.get("frame", "photo")),
            cells=tuple(int(c) for c in cells) if cells is not None else None,
        )


def hamming(a: int, b: int) -> int:
    return int((a ^ b).bit_count())


def same_photo(a: Fingerprint, b: Fingerprint, bits: int = MATCH_BITS) -> bool:
    """Whether `a` and `b` are one photo (see the module's docstring)."""
    if a.frame != b.frame or hamming(a.phash, b.phash) > bits:
        return False
    if a.cells is not None and b.cells is not None:
        return cell_overlap(a.cells, b.cells) >= MIN_OVERLAP
    return True


def cell_overlap(a: Sequence[int], b: Sequence[int]) -> float:
    """The smaller of: the fraction of `a`'s cells touching (8-neighbourhood) one of `b`'s, and
    the same the other way. Two empty grids agree (1.0); one empty grid does not (0.0)."""
    if not a or not b:
        return 1.0 if not a and not b else 0.0
    ga, gb = _grid(a), _grid(b)
    kernel = np.ones((3, 3), np.uint8)
    near_a = cv2.dilate(ga, kernel) > 0
    near_b = cv2.dilate(gb, kernel) > 0
    return float(
        min((ga.astype(bool) & near_b).sum() / len(a), (gb.astype(bool) & near_a).sum() / len(b))
    )


def _grid(cells: Sequence[int]) -> NDArray[np.uint8]:
    g = np.zeros(CELLS_W * CELLS_H, np.uint8)
    g[np.asarray(cells, np.int64)] = 1
    return g.reshape(CELLS_H, CELLS_W)


def photo_fingerprint(
    image_bgr: NDArray[np.uint8], mat: MatDetection | None, spec: MatSpec = DEFAULT_MAT
) -> Fingerprint:
    """The fingerprint of a decoded photo, using the mat the gate found on it."""
    if mat is None or len(mat.marker_ids) < 2:  # one marker fixes the scale, not the view
        small = cv2.resize(image_bgr, (GRID, GRID), interpolation=cv2.INTER_AREA)
        return Fingerprint(dct_hash(small.astype(np.float32).mean(axis=2)), FRAME_PHOTO)
    x0, y0, x1, y1 = spec.placement_area_mm
    inset = (x0 + CELLS_INSET_MM, y0 + CELLS_INSET_MM, x1 - CELLS_INSET_MM, y1 - CELLS_INSET_MM)
    colour = rectified(image_bgr, mat, inset, (CELLS_W, CELLS_H)).astype(np.float32)
    grey = colour.mean(axis=2)  # no colour conversion of the whole photo: only of the grid
    # Cells outside the photo (a mat cut off by the frame, or by a cheat's crop) hold the
    # photo's edge pixels smeared outwards, different in every copy: they count as paper.
    outside = ~inside_photo(image_bgr.shape[:2], mat, inset, (CELLS_W, CELLS_H))
    if outside.all():
        small = cv2.resize(image_bgr, (GRID, GRID), interpolation=cv2.INTER_AREA)
        return Fingerprint(dct_hash(small.astype(np.float32).mean(axis=2)), FRAME_PHOTO)
    if outside.any():
        grey[outside] = np.median(grey[~outside])
    # Each cell against the paper around it: the light's gradient and the photo's brightness
    # divide out. Only what is darker than the paper is hashed: brightening a photo clips the
    # paper and the piece's highlights to white, and those cells moved the hash's bits most.
    contrast = grey / np.maximum(cv2.GaussianBlur(grey, (0, 0), PAPER_SIGMA), 1.0) - 1.0
    contrast[outside] = 0.0
    dark = np.minimum(contrast, 0.0)
    phash = dct_hash(cv2.resize(dark, (GRID, GRID), interpolation=cv2.INTER_AREA))
    return Fingerprint(phash, FRAME_MAT, _piece_cells(np.abs(contrast)))


def _piece_cells(dev: NDArray[np.float32]) -> tuple[int, ...] | None:
    """The piece cells (where the grid differs from the paper around it by `dev`, a fraction),
    or None when there are too few to compare or the grid is mostly noise."""
    noise = float(np.median(np.abs(dev - np.median(dev))))
    piece = dev > max(PIECE_CONTRAST, NOISE_K * noise)
    n = int(piece.sum())
    if n < MIN_PIECE_CELLS or n > MAX_PIECE_FRACTION * piece.size:
        return None
    return tuple(int(i) for i in np.flatnonzero(piece.ravel()))


def inside_photo(
    shape: tuple[int, int],
    mat: MatDetection,
    rect: tuple[float, float, float, float],
    size: tuple[int, int],
) -> NDArray[np.bool_]:
    """(h, w) grid over the (x0, y0, x1, y1) mm rectangle: True where all four corners of the
    cell fall inside the (H, W) photo."""
    x0, y0, x1, y1 = rect
    w_out, h_out = size
    xs, ys = np.linspace(x0, x1, w_out + 1), np.linspace(y0, y1, h_out + 1)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 1, 2)
    px = cv2.perspectiveTransform(grid, mat.mat_to_image()).reshape(h_out + 1, w_out + 1, 2)
    h, w = shape
    ok = (px[..., 0] >= 0) & (px[..., 0] <= w - 1) & (px[..., 1] >= 0) & (px[..., 1] <= h - 1)
    return np.asarray(ok[:-1, :-1] & ok[1:, :-1] & ok[:-1, 1:] & ok[1:, 1:], np.bool_)


def dct_hash(grid: NDArray[Any]) -> int:
    """The 64-bit DCT hash of a GRID x GRID grayscale grid."""
    coeffs = cv2.dct(grid.astype(np.float32))
    low = coeffs[:LOW, :LOW].copy()
    low[0, 0] = coeffs[0, LOW]  # the DC term says only how bright the photo is
    bits = (low > np.median(low)).ravel()
    return int(np.packbits(bits).view(">u8")[0])


def rectified(
    image: NDArray[np.uint8],
    mat: MatDetection,
    rect: tuple[float, float, float, float],
    size: tuple[int, int],
) -> NDArray[np.uint8]:
    """The (x0, y0, x1, y1) mm rectangle of the card resampled to `size` (w, h) cells: warped
    to a grid a few times finer (about two photo pixels a sample), then averaged down, so the
    cells do not alias. Costs the output's pixels, not the photo's."""
    x0, y0, x1, y1 = rect
    w_out, h_out = size
    px_per_cell = mat.px_per_mm * min((x1 - x0) / w_out, (y1 - y0) / h_out)
    k = int(min(MAX_SUPERSAMPLE, max(1, round(px_per_cell / 2))))
    kx, ky = k * w_out / (x1 - x0), k * h_out / (y1 - y0)
    to_grid = np.array([[kx, 0, -x0 * kx - 0.5], [0, ky, -y0 * ky - 0.5], [0, 0, 1]])
    fine = cv2.warpPerspective(
        image,
        to_grid @ mat.image_to_mat,
        (k * w_out, k * h_out),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    if k > 1:
        fine = cv2.resize(fine, (w_out, h_out), interpolation=cv2.INTER_AREA)
    return np.asarray(fine, np.uint8)


def fingerprint_details(
    images: Sequence[NDArray[np.uint8]], gates: Sequence[GateResult]
) -> list[dict[str, Any]]:
    """Per photo `Fingerprint.as_json()`, as an inspection's result keeps them, from the images
    the gate ran on and its results (the mat it found)."""
    return [
        photo_fingerprint(image, gate.mat).as_json()
        for image, gate in zip(images, gates, strict=True)
    ]
