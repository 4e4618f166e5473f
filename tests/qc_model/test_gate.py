"""Tests for qc_model.gate and qc_model.messages: good photos pass, each degradation is caught."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from test_measure import bgr, design, hoops, photo

from qc_model.gate import GateConfig, check_photo
from qc_model.messages import RETAKE_CODES, RETAKE_MESSAGES, retake_message

HOOP = design("KQ-HOOP-BR-30")
GOLD = bgr(HOOP.finish.lab)


@pytest.fixture(scope="module")
def good() -> np.ndarray:
    return photo(hoops(30.0, GOLD), seed=1)


def test_good_photo_passes(good: np.ndarray) -> None:
    result = check_photo(good, HOOP)
    assert result.passed, result.checks
    assert result.retake_codes == []
    assert result.mat is not None and len(result.mat.marker_ids) >= 2
    assert result.location is not None and result.location.count == 2
    names = {c.name for c in result.checks}
    assert {"sharpness", "px_per_mm", "piece_fill", "median_luminance", "mat_markers"} <= names


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"blur": 4.0}, "blurry"),
        ({"gain": 0.3}, "too_dark"),
        ({"gain": 1.7}, "too_bright"),
        ({"size": 560}, "low_resolution"),
    ],
)
def test_degraded_photo_is_sent_to_retake(kwargs: dict, code: str) -> None:
    result = check_photo(photo(hoops(30.0, GOLD), seed=2, **kwargs), HOOP)
    assert not result.passed
    assert code in result.retake_codes
    failed = [c for c in result.checks if not c.passed]
    assert all(c.code in RETAKE_CODES for c in failed)


def test_no_mat_and_no_piece() -> None:
    table = np.full((768, 1024, 3), (60, 80, 100), np.uint8)
    result = check_photo(table, HOOP)
    assert result.retake_codes[0] == "no_mat"
    empty = check_photo(photo(lambda card, px: None), HOOP)
    assert empty.retake_codes == ["no_piece"]


def test_piece_cut_off_by_the_frame(good: np.ndarray) -> None:
    # Crop the photo through the left hoop, keeping enough markers to find the mat.
    x = int(np.nonzero(check_photo(good, HOOP).location.mask.any(axis=0))[0][0]) + 15
    result = check_photo(np.ascontiguousarray(good[:, x:]), HOOP)
    assert "piece_cut_off" in result.retake_codes


def test_pair_needs_both_pieces() -> None:
    def one_hoop(card: np.ndarray, px) -> None:
        cv2.circle(card, (px(150), px(105)), px(14), GOLD, px(2.0), cv2.LINE_AA)

    result = check_photo(photo(one_hoop), HOOP)
    assert result.retake_codes == ["pair_incomplete"]
    assert check_photo(photo(one_hoop), design("KQ-RING-BR-21")).passed


def test_resolution_follows_the_design_tolerance(good: np.ndarray) -> None:
    # A stricter config demands more pixels per tolerance than this photo has.
    strict = GateConfig(min_tolerance_px=10.0)
    result = check_photo(good, HOOP, strict)
    assert result.retake_codes == ["too_far"]
    check = next(c for c in result.checks if c.name == "px_per_mm")
    assert check.limit == pytest.approx(10.0 / 1.5, abs=1e-3)


def test_sharpness_falls_with_blur() -> None:
    values = []
    for blur in (0.0, 1.5, 3.0):
        result = check_photo(photo(hoops(30.0, GOLD), blur=blur, seed=4), HOOP)
        values.append(next(c.measured for c in result.checks if c.name == "sharpness"))
    assert values[0] > values[1] > values[2]


@pytest.mark.parametrize("angle", [0, 45, 90])
def test_motion_blur_in_any_direction_is_caught(good: np.ndarray, angle: int) -> None:
    # A shaken phone smears edges along one direction only (here 9 px, 3 mm); edges across it
    # stay sharp, so the gradient magnitude alone still reads ~0.35, well above the limit.
    kernel = np.zeros((9, 9), np.float32)
    kernel[4, :] = 1.0
    rot = cv2.getRotationMatrix2D((4, 4), angle, 1.0)
    kernel = cv2.warpAffine(kernel, rot, (9, 9))
    smeared = cv2.filter2D(good, -1, kernel / kernel.sum())
    result = check_photo(smeared, HOOP)
    assert result.mat is not None  # still a usable mat: the focus check is what fails
    assert "blurry" in result.retake_codes


def test_bad_image_raises() -> None:
    with pytest.raises(ValueError, match="uint8 BGR"):
        check_photo(np.zeros((10, 10), np.uint8), HOOP)


def test_gate_result_serialises_without_arrays(good: np.ndarray) -> None:
    dumped = check_photo(good, HOOP).model_dump()
    assert set(dumped) == {"checks", "passed", "retake_codes"}
    assert dumped["passed"] is True and dumped["retake_codes"] == []


def test_messages_in_both_languages() -> None:
    for code in RETAKE_CODES:
        en, sw = retake_message(code, "en"), retake_message(code, "sw")
        assert en and sw and en != sw
        assert len(en) < 120 and len(sw) < 120  # short enough for a phone screen
    assert retake_message("too_far", "sw").startswith("Sogea karibu")
    assert set(RETAKE_MESSAGES) >= {"too_far", "blurry", "too_dark", "too_bright", "no_mat"}
    with pytest.raises(ValueError, match="unknown retake code"):
        retake_message("sparkly")
    with pytest.raises(ValueError, match="unknown language"):
        retake_message("blurry", "fr")
