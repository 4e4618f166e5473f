"""Augmentations that imitate cheap-phone capture, applied to the uint8 RGB piece crop."""

from __future__ import annotations

import os
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from training.config import AugmentConfig

# albumentations asks PyPI for a newer version at import, in every DataLoader worker: offline
# (a training host without internet) each ask waits for a DNS timeout. Seen: 60 s per start.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


def build_augment(cfg: AugmentConfig, seed: int | None = None) -> Any:  # A.Compose | None
    """The albumentations pipeline for `cfg`, or None when augmentation is off.

    Geometry stays mild: the crop is already centred on the piece, and a defect at the crop's
    edge must not be pushed out of view (that would make the label wrong).
    """
    if not cfg.enabled:
        return None
    import albumentations as A

    steps: list = []
    if cfg.flip_rotate:
        steps += [A.HorizontalFlip(p=0.5), A.RandomRotate90(p=1.0)]
    steps += [
        A.Perspective(scale=(0.02, 0.06), border_mode=cv2.BORDER_REPLICATE, p=cfg.perspective),
        A.OneOf(
            [
                A.RandomBrightnessContrast((-0.25, 0.25), (-0.25, 0.25), p=1.0),
                A.RandomGamma((70, 140), p=1.0),
                A.PlanckianJitter(mode="blackbody", p=1.0),  # indoor bulbs to daylight
                A.HueSaturationValue(8, 20, 15, p=1.0),
            ],
            p=cfg.colour,
        ),
        A.RandomShadow(
            shadow_roi=(0, 0, 1, 1),
            num_shadows_limit=(1, 2),
            shadow_intensity_range=(0.15, 0.45),
            p=cfg.shadow,
        ),
        A.OneOf(
            [
                A.GaussianBlur(blur_limit=(3, 5), sigma_limit=(0.4, 1.4), p=1.0),
                A.MotionBlur(blur_limit=(3, 7), p=1.0),
            ],
            p=cfg.blur,
        ),
        A.GaussNoise(std_range=(0.01, 0.05), p=cfg.noise),
        A.ImageCompression(quality_range=(35, 90), p=cfg.jpeg),
    ]
    pipeline = A.Compose(steps, seed=seed)
    return pipeline


def apply(pipeline: Any, image: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Run `pipeline` (or nothing when None) on one uint8 RGB crop; same size, uint8."""
    if pipeline is None:
        return image
    out = pipeline(image=image)["image"]
    return np.ascontiguousarray(out, dtype=np.uint8)
