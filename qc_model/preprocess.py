"""The one preprocessing path, shared by training and serving: photo -> piece crop -> tensor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from qc_model.locate import Box, PieceLocation, locate_piece
from qc_model.mat import MatDetection

_INTERPOLATION = {"linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC, "area": cv2.INTER_AREA}


class PreprocessConfig(BaseModel):
    """Everything that turns a photo into the network's input; stored in every model package."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # 224 px: on a 30 mm piece with the default margin the crop spans 36 mm, so 1 mm is 6.2 px
    # (>= 2 px holds for crops up to 112 mm); docs/MODEL.md has the reasoning.
    input_size: int = Field(default=224, ge=32, le=1024)
    # tf_efficientnet_lite0 was trained on inputs scaled to [-1, 1].
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    crop: Literal["piece", "none"] = "piece"
    # Extra context on each side, as a fraction of the piece's longer side.
    crop_margin: float = Field(default=0.1, ge=0.0, le=1.0)
    # "auto": area averaging when shrinking (no aliasing of fine scratches), cubic when enlarging.
    interpolation: Literal["auto", "linear", "cubic", "area"] = "auto"


@dataclass(frozen=True)
class Crop:
    """A square RGB crop of cfg.input_size and where it came from in the photo."""

    image: NDArray[np.uint8]  # (S, S, 3) RGB
    box: Box  # square in photo pixels; may reach past the frame (padded by edge replication)
    location: PieceLocation | None  # None: no piece found or crop="none"; the whole frame is used


def crop_box(shape: tuple[int, int], bbox: Box | None, margin: float) -> Box:
    """The square box around `bbox` (or around the whole frame when None)."""
    h, w = shape
    x0, y0, x1, y1 = bbox if bbox is not None else (0, 0, w, h)
    side = max(x1 - x0, y1 - y0)
    side = max(8, round(side * (1.0 + 2.0 * margin))) if bbox is not None else side
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    bx0, by0 = round(cx - side / 2.0), round(cy - side / 2.0)
    return (bx0, by0, bx0 + side, by0 + side)


def extract_box(image: NDArray[np.uint8], box: Box) -> NDArray[np.uint8]:
    """The box's pixels; parts past the frame are filled by repeating its edge."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = box
    inner = image[max(0, y0) : min(h, y1), max(0, x0) : min(w, x1)]
    pads = (max(0, -y0), max(0, y1 - h), max(0, -x0), max(0, x1 - w))
    if any(pads):
        # Replicating the edge keeps the paper colour going instead of inventing black bars.
        return np.asarray(cv2.copyMakeBorder(inner, *pads, cv2.BORDER_REPLICATE), np.uint8)
    return inner


def crop_to_piece(
    image_bgr: NDArray[np.uint8],
    cfg: PreprocessConfig,
    *,
    location: PieceLocation | None = None,
    mat: MatDetection | None = None,
) -> Crop:
    """Square crop around the piece (located here unless given), resized to cfg.input_size, RGB.

    A `mat` already found (the gate's) is reused instead of looking for the markers again."""
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
        got = f"{image_bgr.dtype} {image_bgr.shape}"
        raise ValueError(f"expected a uint8 BGR image (H, W, 3), got {got}")
    if cfg.crop == "piece" and location is None:
        location = locate_piece(image_bgr, mat, find_mat=mat is None)
    if cfg.crop == "none":
        location = None
    box = crop_box(image_bgr.shape[:2], location.bbox if location else None, cfg.crop_margin)
    region = extract_box(image_bgr, box)
    size = cfg.input_size
    side = region.shape[0]
    if cfg.interpolation == "auto":
        flag = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    else:
        flag = _INTERPOLATION[cfg.interpolation]
    resized = cv2.resize(region, (size, size), interpolation=flag) if side != size else region
    rgb = np.ascontiguousarray(cv2.cvtColor(resized, cv2.COLOR_BGR2RGB), np.uint8)
    return Crop(rgb, box, location)


def normalize(crop_rgb: NDArray[np.uint8], cfg: PreprocessConfig) -> NDArray[np.float32]:
    """uint8 RGB (H, W, 3) -> float32 (3, H, W) scaled to [0, 1] then standardised."""
    if crop_rgb.ndim != 3 or crop_rgb.shape[2] != 3 or crop_rgb.dtype != np.uint8:
        got = f"{crop_rgb.dtype} {crop_rgb.shape}"
        raise ValueError(f"expected a uint8 RGB crop (H, W, 3), got {got}")
    x = crop_rgb.astype(np.float32) * np.float32(1.0 / 255.0)
    x -= np.asarray(cfg.mean, np.float32)
    x /= np.asarray(cfg.std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))  # (3, H, W)


def preprocess(
    image_bgr: NDArray[np.uint8],
    cfg: PreprocessConfig,
    *,
    location: PieceLocation | None = None,
    mat: MatDetection | None = None,
) -> tuple[NDArray[np.float32], Box]:
    """Photo -> (network input (3, S, S) float32, crop box in photo pixels)."""
    crop = crop_to_piece(image_bgr, cfg, location=location, mat=mat)
    return normalize(crop.image, cfg), crop.box
