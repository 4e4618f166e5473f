"""research.design_probe: features of a photo's piece in the mat frame, scale-true."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from research.design_probe import describe

sys.path.insert(0, str(Path(__file__).parents[2] / "tests" / "qc_model"))
from fingerprint_scenes import scene


def test_features_follow_the_piece_not_the_photo_size() -> None:
    photo = scene(0)
    a = describe(photo)
    smaller = describe(cv2.resize(photo, None, fx=0.7, fy=0.7, interpolation=cv2.INTER_AREA))
    other = describe(scene(5))
    assert a is not None and smaller is not None and other is not None
    # The same piece at 70 % of the pixels: the mat fixes the scale, so the size features agree.
    assert abs(a[0] - smaller[0]) < 0.15
    assert np.linalg.norm(a - smaller) < np.linalg.norm(a - other)


def test_no_mat_no_features() -> None:
    rng = np.random.default_rng(0)
    assert describe((rng.random((300, 400, 3)) * 255).astype(np.uint8)) is None
