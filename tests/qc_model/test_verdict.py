"""Tests for qc_model.verdict: the decision rules and their edges (thresholds, bad scores)."""

from __future__ import annotations

import math

import pytest
from gate_results import gate_result

from qc_model.spec_checks import CheckResult
from qc_model.verdict import (
    Band,
    PhotoInput,
    call_photo,
    decide,
    defect_classes,
    merge_thresholds,
)

BANDS = {"scratch": (0.3, 0.7), "tarnish": (0.4, 0.8)}


def _photo(scratch: float = 0.0, tarnish: float = 0.0, *failed: str) -> PhotoInput:
    return PhotoInput(gate=gate_result(*failed), probs={"scratch": scratch, "tarnish": tarnish})


def _spec(result: str, name: str = "size_outer_diameter") -> CheckResult:
    return CheckResult(
        name=name,
        measured=31.0,
        expected=30.0,
        tolerance=1.5,
        unit="mm",
        result=result,  # type: ignore[arg-type]
        reason=f"{name} {result}",
        defect="wrong_size" if result in ("fail", "borderline") else None,
    )


@pytest.mark.parametrize(
    ("score", "expected"),
    [
        (0.0, "pass"),
        (0.2999, "pass"),
        (0.3, "review"),  # exactly t_low: in the band
        (0.6999, "review"),
        (0.7, "fail"),  # exactly t_high: fails
        (1.0, "fail"),
    ],
)
def test_score_at_and_around_thresholds(score: float, expected: str) -> None:
    assert decide([_photo(scratch=score)], BANDS).decision == expected
    assert call_photo({"scratch": score}, merge_thresholds(BANDS)) == expected


@pytest.mark.parametrize("bad", [-0.01, 1.01, math.nan, math.inf, -math.inf])
def test_out_of_range_or_nan_scores_raise(bad: float) -> None:
    with pytest.raises(ValueError, match="probability"):
        decide([_photo(scratch=bad)], BANDS)


@pytest.mark.parametrize(
    "band", [(0.8, 0.2), (-0.1, 0.5), (0.2, 1.5), (math.nan, 0.5), (0.1, math.inf)]
)
def test_bad_thresholds_raise(band: tuple[float, float]) -> None:
    with pytest.raises(ValueError, match="t_low"):
        decide([_photo()], {"scratch": band})


def test_empty_and_too_many_photos_raise() -> None:
    with pytest.raises(ValueError, match="at least one photo"):
        decide([], BANDS)
    with pytest.raises(ValueError, match="at most 6"):
        decide([_photo()] * 7, BANDS)


def test_score_for_unknown_class_raises() -> None:
    with pytest.raises(ValueError, match="no threshold"):
        decide([PhotoInput(probs={"sparkle": 0.1})], BANDS)


@pytest.mark.parametrize(("value", "expected"), [(0.0, "pass"), (0.5, "review"), (0.9, "fail")])
def test_all_scores_equal(value: float, expected: str) -> None:
    photos = [_photo(value, value) for _ in range(3)]
    verdict = decide(photos, BANDS)
    assert verdict.decision == expected
    assert verdict.scores == {"scratch": value, "tarnish": value}


def test_degenerate_band_has_no_review_zone() -> None:
    bands = {"scratch": (0.5, 0.5)}
    assert decide([PhotoInput(probs={"scratch": 0.4999})], bands).decision == "pass"
    assert decide([PhotoInput(probs={"scratch": 0.5})], bands).decision == "fail"


def test_all_photos_unusable_is_retake_with_codes() -> None:
    verdict = decide([_photo(0.9, 0, "blurry"), _photo(0, 0, "no_mat", "too_dark")], BANDS)
    assert verdict.decision == "retake"
    assert [r.code for r in verdict.reasons] == ["blurry", "no_mat", "too_dark"]
    assert verdict.reasons[0].text.startswith("Hold the phone still")
    assert verdict.defects == []


def test_unusable_photo_scores_are_ignored() -> None:
    # The blurry photo's high scratch score must not fail the piece: it cannot be trusted.
    verdict = decide([_photo(0.95, 0, "blurry"), _photo(0.1, 0.1)], BANDS)
    assert verdict.decision == "pass"
    assert [p.call for p in verdict.photos] == ["unusable", "pass"]
    assert verdict.scores["scratch"] == 0.1


def test_photos_combine_by_max_per_class() -> None:
    verdict = decide([_photo(0.1, 0.85), _photo(0.75, 0.1)], BANDS)
    assert verdict.decision == "fail"
    assert verdict.scores == {"scratch": 0.75, "tarnish": 0.85}
    assert verdict.defects == ["scratch", "tarnish"]


def test_disagreeing_photos_go_to_review() -> None:
    verdict = decide([_photo(0.9, 0.0), _photo(0.05, 0.05)], BANDS)
    assert verdict.decision == "review"
    assert "photos_disagree" in [r.code for r in verdict.reasons]
    assert verdict.defects == ["scratch"]


def test_fail_with_other_photo_in_band_is_fail() -> None:
    # The second photo is not clearly clean (tarnish in the band), so nothing contradicts the fail.
    assert decide([_photo(0.9, 0.0), _photo(0.05, 0.5)], BANDS).decision == "fail"


@pytest.mark.parametrize(
    ("spec", "scratch", "expected"),
    [
        ("pass", 0.0, "pass"),
        ("fail", 0.0, "fail"),
        ("borderline", 0.0, "review"),
        ("not_measured", 0.0, "pass"),
        ("borderline", 0.9, "fail"),
        ("pass", 0.5, "review"),
    ],
)
def test_spec_checks(spec: str, scratch: float, expected: str) -> None:
    verdict = decide([_photo(scratch)], BANDS, [_spec(spec)])
    assert verdict.decision == expected
    if spec in ("fail", "borderline"):
        assert verdict.checks == ["size_outer_diameter"]
        assert "wrong_size" in verdict.defects


def test_spec_fail_beats_disagreement() -> None:
    verdict = decide([_photo(0.9), _photo(0.0)], BANDS, [_spec("fail")])
    assert verdict.decision == "fail"


def test_retake_beats_spec_fail() -> None:
    # No usable photo: the measurement came from a photo the gate refused; retake, do not fail.
    verdict = decide([_photo(0, 0, "too_far")], BANDS, [_spec("fail")])
    assert verdict.decision == "retake"


def test_overrides_replace_package_thresholds() -> None:
    bands = merge_thresholds(BANDS, {"scratch": Band(t_low=0.6, t_high=0.95)})
    assert bands["scratch"] == Band(t_low=0.6, t_high=0.95)
    assert decide([_photo(0.8)], bands).decision == "review"
    with pytest.raises(ValueError, match="unknown class"):
        merge_thresholds(BANDS, {"sparkle": (0.1, 0.2)})


def test_photo_without_gate_or_scores_counts_as_clean_usable() -> None:
    verdict = decide([PhotoInput()], BANDS)
    assert verdict.decision == "pass"
    assert verdict.model_dump()["photos"][0]["call"] == "pass"


def test_defect_classes_of_a_single_label_model_with_good() -> None:
    # An imported set's own class names: every class but "good" can hold a piece.
    assert defect_classes("single_label", ["defective", "good"]) == ["defective"]
    assert defect_classes("single_label", ["good", "scratch", "chipped"]) == ["scratch", "chipped"]
    # Without "good" nothing says which class is a defect: the taxonomy's only.
    assert defect_classes("single_label", ["keep", "scratch"]) == ["scratch"]
    assert defect_classes("multilabel", ["scratch", "tarnish"]) == ["scratch", "tarnish"]


def test_an_imported_class_name_holds_the_piece() -> None:
    bands = {"defective": (0.3, 0.6)}
    held = decide([PhotoInput(gate=gate_result(), probs={"defective": 0.9})], bands)
    assert held.decision == "fail" and held.defects == ["defective"]
    assert held.reasons[0].code == "defective" and "defective" in held.reasons[0].text
    unsure = decide([PhotoInput(gate=gate_result(), probs={"defective": 0.4})], bands)
    assert unsure.decision == "review"
    assert (
        decide([PhotoInput(gate=gate_result(), probs={"defective": 0.1})], bands).decision == "pass"
    )
