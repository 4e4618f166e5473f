"""The anomaly model's input: the piece crop at its design's fixed scale, or the whole photo.

A photo on the calibration mat is cropped to the piece (the photo gate's location, reused when
given) and resampled to the bank's pixels per millimetre, so a scratch is as wide in the
features on every phone and every distance. A photo without a mat (an imported real photo:
a solar cell, a product shot) has no scale to fix and no paper to separate the piece from, so
it is used whole, only shrunk to the longest side allowed. Numpy and OpenCV only.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from qc_model.locate import PieceLocation, locate_piece
from qc_model.mat import MatDetection
from qc_model.preprocess import crop_box, extract_box

# tf_efficientnet_lite0 was trained on inputs scaled to [-1, 1] (qc_model.preprocess).
MEAN, STD = 0.5, 0.5


@dataclass(frozen=True)
class AnomalyInput:
    """One photo made ready for the feature extractor."""

    tensor: NDArray[np.float32]  # (3, H, W), H and W multiples of the extractor's padding
    piece: NDArray[np.bool_] | None  # (H, W) the piece's pixels; None: the whole input counts
    box: tuple[int, int, int, int]  # the region of the photo used, in its pixels
    size: tuple[int, int]  # (h, w) of the image inside the padded tensor
    px_per_mm: float | None  # the photo's scale as the mat gave it (None: no mat)


def photo_scale(
    image_bgr: NDArray[np.uint8],
    location: PieceLocation | None = None,
    mat: MatDetection | None = None,
) -> tuple[PieceLocation | None, MatDetection | None]:
    """The piece and the mat, found here unless the caller (the photo gate) has them."""
    if location is None:
        location = locate_piece(image_bgr, mat, find_mat=mat is None)
    if mat is None and location is not None:
        mat = location.mat
    return location, mat


def prepare_input(
    image_bgr: NDArray[np.uint8],
    *,
    px_per_mm: float | None,
    max_side: int,
    pad_to: int,
    margin: float = 0.1,
    location: PieceLocation | None = None,
    mat: MatDetection | None = None,
) -> AnomalyInput:
    """Photo -> the extractor's input at `px_per_mm` (the bank's scale) when the photo is on
    the mat and a piece was found, else the whole photo; never longer than `max_side`."""
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
        raise ValueError(f"expected a uint8 BGR image (H, W, 3), got {image_bgr.shape}")
    h, w = image_bgr.shape[:2]
    location, mat = photo_scale(image_bgr, location, mat)
    on_mat = mat is not None and location is not None
    mask: NDArray[np.uint8] | None = None
    if on_mat:
        assert location is not None and mat is not None
        box = crop_box((h, w), location.bbox, margin)
        region = extract_box(image_bgr, box)
        mask = extract_box(location.mask, box)
        f = px_per_mm / mat.px_per_mm if px_per_mm else 1.0
    else:
        box, region = (0, 0, w, h), image_bgr
        f = 1.0
    rh, rw = region.shape[:2]
    f = min(f, max_side / max(rh, rw))
    if abs(f - 1.0) > 1e-3:
        size = (max(1, round(rw * f)), max(1, round(rh * f)))
        flag = cv2.INTER_AREA if f < 1.0 else cv2.INTER_CUBIC
        region = np.asarray(cv2.resize(region, size, interpolation=flag), np.uint8)
        if mask is not None:
            mask = np.asarray(cv2.resize(mask, size, interpolation=cv2.INTER_AREA), np.uint8)
    rh, rw = region.shape[:2]
    hp, wp = -(-rh // pad_to) * pad_to, -(-rw // pad_to) * pad_to
    rgb = np.zeros((hp, wp, 3), np.float32)
    # The padding is the region's own edge, not black: a black bar would be "unusual" itself.
    padded = cv2.copyMakeBorder(region, 0, hp - rh, 0, wp - rw, cv2.BORDER_REPLICATE)
    rgb[:] = padded[:, :, ::-1]
    x = (rgb * np.float32(1.0 / 255.0) - np.float32(MEAN)) / np.float32(STD)
    piece = None
    if mask is not None:
        piece = np.zeros((hp, wp), np.bool_)
        piece[:rh, :rw] = mask > 0
    tensor = np.ascontiguousarray(x.transpose(2, 0, 1))
    scale = mat.px_per_mm if on_mat and mat is not None else None
    return AnomalyInput(tensor, piece, box, (rh, rw), scale)


def piece_cells(
    piece: NDArray[np.bool_] | None, grid: tuple[int, int], stride: int, margin: int
) -> NDArray[np.bool_]:
    """(gh, gw) feature cells that count: within `margin` pixels of the piece (all of them
    when no piece mask is known, e.g. a photo used whole)."""
    gh, gw = grid
    if piece is None or not piece.any():
        return np.ones((gh, gw), np.bool_)
    p = piece[: gh * stride, : gw * stride].reshape(gh, stride, gw, stride).any(axis=(1, 3))
    cells = np.asarray(p, np.uint8)
    reach = -(-margin // stride)
    if reach:
        kernel = np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)
        cells = np.asarray(cv2.dilate(cells, kernel), np.uint8)
    return cells > 0
