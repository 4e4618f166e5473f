"""Tests for qc_model.preprocess: crop geometry, normalisation, config round trip."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from qc_model.locate import PieceLocation
from qc_model.mat import DEFAULT_MAT
from qc_model.preprocess import PreprocessConfig, crop_box, crop_to_piece, normalize, preprocess


def _paper_with_disc(cx: int = 400, cy: int = 300, r: int = 40) -> np.ndarray:
    img = np.full((600, 800, 3), DEFAULT_MAT.paper_rgb[::-1], np.uint8)
    cv2.circle(img, (cx, cy), r, (30, 160, 220), -1)
    return img


def test_crop_is_square_around_the_piece() -> None:
    cfg = PreprocessConfig(input_size=64, crop_margin=0.25)
    crop = crop_to_piece(_paper_with_disc(), cfg)
    assert crop.image.shape == (64, 64, 3) and crop.image.dtype == np.uint8
    x0, y0, x1, y1 = crop.box
    assert x1 - x0 == y1 - y0
    # Disc of diameter ~81 px plus 25 % margin each side: ~121 px, centred on (400, 300).
    assert abs((x1 - x0) - 121) <= 3
    assert abs((x0 + x1) / 2 - 400) <= 2 and abs((y0 + y1) / 2 - 300) <= 2
    assert crop.location is not None
    # The disc's colour (RGB order now) fills the centre of the crop.
    assert tuple(crop.image[32, 32]) == (220, 160, 30)


def test_crop_near_edge_is_padded_not_shifted() -> None:
    cfg = PreprocessConfig(input_size=32, crop_margin=0.5)
    crop = crop_to_piece(_paper_with_disc(cx=50, cy=300, r=40), cfg)
    assert crop.box[0] < 0  # the box keeps the piece centred; the missing strip is edge-replicated
    assert crop.image.shape == (32, 32, 3)


def test_no_piece_falls_back_to_whole_frame() -> None:
    img = np.full((300, 400, 3), 200, np.uint8)
    crop = crop_to_piece(img, PreprocessConfig(input_size=32))
    assert crop.location is None
    assert crop.box == (0, -50, 400, 350)


def test_crop_none_letterboxes_the_frame() -> None:
    cfg = PreprocessConfig(input_size=32, crop="none")
    crop = crop_to_piece(_paper_with_disc(), cfg)
    assert crop.location is None and crop.box == (0, -100, 800, 700)


def test_given_location_is_used() -> None:
    img = _paper_with_disc()
    mask = np.zeros(img.shape[:2], np.uint8)
    mask[100:150, 100:150] = 255
    loc = PieceLocation(mask, [(100, 100, 150, 150)], (100, 100, 150, 150), 0.01, False, None)
    crop = crop_to_piece(img, PreprocessConfig(input_size=32, crop_margin=0.0), location=loc)
    assert crop.box == (100, 100, 150, 150)


def test_normalize_matches_formula() -> None:
    cfg = PreprocessConfig(mean=(0.1, 0.2, 0.3), std=(0.5, 0.25, 2.0))
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 255, 51, 0
    x = normalize(rgb, cfg)
    assert x.shape == (3, 4, 4) and x.dtype == np.float32
    np.testing.assert_allclose(
        x[:, 0, 0], [(1 - 0.1) / 0.5, (0.2 - 0.2) / 0.25, -0.3 / 2.0], atol=1e-6
    )


def test_preprocess_is_normalize_of_crop() -> None:
    cfg = PreprocessConfig(input_size=48)
    img = _paper_with_disc()
    x, box = preprocess(img, cfg)
    crop = crop_to_piece(img, cfg)
    assert box == crop.box
    np.testing.assert_array_equal(x, normalize(crop.image, cfg))


def test_shrinking_averages_instead_of_aliasing() -> None:
    # A 1-px grid of black lines on white: area averaging gives mid-grey, not stripes.
    img = np.full((400, 400, 3), 255, np.uint8)
    img[::2] = 0
    crop = crop_to_piece(img, PreprocessConfig(input_size=100, crop="none"))
    assert crop.image.std() < 3 and 120 < crop.image.mean() < 135


def test_config_is_frozen_and_validated() -> None:
    cfg = PreprocessConfig()
    assert cfg.input_size == 224 and cfg.mean == (0.5, 0.5, 0.5)
    with pytest.raises(ValidationError):
        cfg.input_size = 100  # type: ignore[misc]
    with pytest.raises(ValidationError):
        PreprocessConfig(crop="middle")  # type: ignore[arg-type]
    assert PreprocessConfig.model_validate_json(cfg.model_dump_json()) == cfg


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="uint8 BGR"):
        crop_to_piece(np.zeros((10, 10, 3), np.float32), PreprocessConfig())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="uint8 RGB"):
        normalize(np.zeros((10, 10), np.uint8), PreprocessConfig())


def test_crop_box_of_whole_frame() -> None:
    assert crop_box((100, 50), None, 0.3) == (-25, 0, 75, 100)  # (h, w): a tall frame
