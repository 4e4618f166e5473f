"""The surface branch's input: the piece crop at a fixed scale in pixels per millimetre.

The defect network sees the piece crop resized to its input size, so a scratch's width in
its input depends on the piece's size (docs/MODEL.md, "Finer photos"). The surface branch
sees the same square crop without that resize. Its input is resampled only to bring the photo
to the scale the branch was trained at, measured from the mat's markers, so a 0.1 mm hairline
is as wide for it on every design and every phone. Numpy and OpenCV only (ARCHITECTURE.md).
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from qc_model.locate import Box
from qc_model.preprocess import extract_box


class SurfaceConfig(BaseModel):
    """How a photo becomes the surface branch's input; stored in packages that have one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # The scale the branch was trained at; None: the photo's own pixels, whatever their scale.
    px_per_mm: float | None = Field(default=None, gt=0)
    # Within this relative difference the crop is not resampled: resampling blurs the very
    # hairlines the branch looks for, and a few percent of scale does not matter to it.
    scale_tolerance: float = Field(default=0.15, ge=0.0, lt=1.0)
    # A longer crop side is shrunk to this (a locate failure can return the whole mat).
    max_side: int = Field(default=1024, ge=32, le=4096)
    # Cell size of the branch's output in input pixels; the input is padded to a multiple.
    stride: int = Field(default=8, ge=1, le=64)


def surface_scale(cfg: SurfaceConfig, photo_px_per_mm: float | None, side: int) -> float:
    """The factor the crop of `side` pixels is resized by (1.0: left as it is)."""
    f = 1.0
    if cfg.px_per_mm is not None and photo_px_per_mm is not None and photo_px_per_mm > 0:
        f = cfg.px_per_mm / photo_px_per_mm
        if abs(f - 1.0) <= cfg.scale_tolerance:
            f = 1.0
    if side * f > cfg.max_side:
        f = cfg.max_side / side
    return f


def surface_crop(
    image_bgr: NDArray[np.uint8],
    box: Box,
    cfg: SurfaceConfig,
    photo_px_per_mm: float | None,
) -> tuple[NDArray[np.uint8], float]:
    """(RGB crop at the branch's scale, padded with black to a multiple of cfg.stride; factor)."""
    region = extract_box(image_bgr, box)
    side = region.shape[0]
    f = surface_scale(cfg, photo_px_per_mm, side)
    if f != 1.0:
        size = max(cfg.stride, round(side * f))
        flag = cv2.INTER_AREA if f < 1.0 else cv2.INTER_CUBIC
        region = np.asarray(cv2.resize(region, (size, size), interpolation=flag), np.uint8)
    s = cfg.stride
    h, w = region.shape[:2]
    hp, wp = -(-h // s) * s, -(-w // s) * s
    out = np.zeros((hp, wp, 3), np.uint8)
    out[:h, :w] = region[:, :, ::-1]
    return out, f


def surface_input(crop_rgb: NDArray[np.uint8]) -> NDArray[np.float32]:
    """uint8 RGB (H, W, 3) -> float32 (3, H, W) in [-1, 1], tf_efficientnet_lite0's scaling."""
    x = crop_rgb.astype(np.float32) * np.float32(1.0 / 127.5) - np.float32(1.0)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def logit(p: NDArray[np.floating]) -> NDArray[np.float64]:
    """log(p / (1 - p)), with p clipped away from 0 and 1."""
    q = np.clip(np.asarray(p, np.float64), 1e-7, 1 - 1e-7)
    return np.asarray(np.log(q) - np.log1p(-q), np.float64)


def fuse_probability(
    p_model: NDArray[np.floating],
    z_surface: NDArray[np.floating],
    w_model: float,
    w_surface: float,
    bias: float,
) -> NDArray[np.float64]:
    """sigmoid(w_model * logit(p_model) + w_surface * z_surface + bias): a package's `Fusion`."""
    z = w_model * logit(p_model) + w_surface * np.asarray(z_surface, np.float64) + bias
    return np.asarray(1.0 / (1.0 + np.exp(-z)), np.float64)
