"""Where each defect is: the manifest's defect masks as targets for every cell of the class map.

Image labels alone say *that* a photo shows a scratch, not *where*. A network trained on them
alone can learn a shortcut, such as "polished metal, so probably scratched", which is what the
bundled model did (models/default/MODEL_CARD.md: every good metal piece held). The class map
(DefectNet's CAM, one logit per class and cell) can be told where instead: a cell is positive
for a class when the class's mask touches it, and every cell is negative for a class the photo
does not have. `cam_loss` in the training config weighs this per-cell loss against the image
loss (0, the default, leaves it out).

A mask is cropped with the same box as the photo (`CropStore.box`), padded with zeros past the
frame, augmented with the photo (geometric steps only change it), then reduced to the class
map's grid. A class labelled present without a mask (e.g. a QC decision, which has no outline)
has no cell targets: its cells are left out of the loss, not taken as negatives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray

from qc_model.errors import DataError
from qc_model.locate import Box
from qc_model.manifest import Record


@dataclass(frozen=True)
class CellSpec:
    """What the per-cell targets are made for: the classes (in order) and the class map grid."""

    classes: tuple[str, ...]
    grid: tuple[int, int]  # (h, w) of the class map at the input size


def extract_mask(mask: NDArray[np.uint8], box: Box) -> NDArray[np.uint8]:
    """The box's part of a full-photo mask; past the frame there is no defect (zeros)."""
    h, w = mask.shape[:2]
    x0, y0, x1, y1 = box
    out = np.zeros((y1 - y0, x1 - x0), np.uint8)
    ix0, iy0, ix1, iy1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if ix1 > ix0 and iy1 > iy0:
        out[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0] = mask[iy0:iy1, ix0:ix1]
    return out


def mask_stack(
    record: Record, root: Path, classes: Sequence[str], box: Box, size: int
) -> tuple[NDArray[np.uint8], NDArray[np.bool_]]:
    """(size, size, K) 0/1 masks of the crop, and which classes have known cells (K,)."""
    stack = np.zeros((size, size, len(classes)), np.uint8)
    valid = np.ones(len(classes), bool)
    for k, name in enumerate(classes):
        if name not in record.labels:
            continue  # absent: every cell negative
        rel = record.masks.get(name)
        if rel is None:
            valid[k] = False  # present, but nobody drew where
            continue
        full = cv2.imread(str(root / rel), cv2.IMREAD_GRAYSCALE)
        if full is None:
            raise DataError(f"{record.id}: mask {rel} for {name} is missing or unreadable")
        if full.shape[:2] != (record.height, record.width):
            raise DataError(
                f"{record.id}: mask {rel} is {full.shape[1]}x{full.shape[0]}, the photo "
                f"{record.width}x{record.height}"
            )
        crop = extract_mask(np.asarray(full > 0, np.uint8) * 255, box)
        # Area resampling then "any coverage": a pit of one photo pixel stays in the crop.
        small = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
        stack[:, :, k] = small > 0
    return stack, valid


def to_cells(stack: NDArray[np.uint8], grid: tuple[int, int]) -> NDArray[np.uint8]:
    """(S, S, K) 0/1 masks -> (K, h, w): 1 where the class touches the cell."""
    h, w = grid
    k = stack.shape[2]
    if k == 0:
        return np.zeros((0, h, w), np.uint8)
    cover = cv2.resize(stack.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
    cover = cover.reshape(h, w, k)
    return np.ascontiguousarray((cover > 0).transpose(2, 0, 1), dtype=np.uint8)


def cell_loss(cam: torch.Tensor, cells: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy over the known cells: cam (B, K, h, w) logits, cells (B, K,
    h, w) 0/1, valid (B, K). Each (photo, class) map counts once, however many cells it has."""
    if cam.shape != cells.shape:
        raise DataError(f"class map {tuple(cam.shape)} and cell targets {tuple(cells.shape)}")
    per_cell = F.binary_cross_entropy_with_logits(cam, cells.to(cam.dtype), reduction="none")
    per_map = per_cell.mean(dim=(2, 3))  # (B, K)
    weight = valid.to(cam.dtype)
    return (per_map * weight).sum() / weight.sum().clamp_min(1.0)
