"""qc_model.verdict with the anomaly model: `unusual_surface` sends a piece to review, never
to fail, and only from usable photos; the edges of the review level."""

from __future__ import annotations

import math

import pytest
from gate_results import gate_result

from qc_model.messages import UNUSUAL_SURFACE, review_message
from qc_model.spec_checks import CheckResult
from qc_model.verdict import PhotoInput, decide

BANDS = {"scratch": (0.3, 0.7)}


def _photo(anomaly: float | None, scratch: float = 0.0, *failed: str) -> PhotoInput:
    return PhotoInput(gate=gate_result(*failed), probs={"scratch": scratch}, anomaly=anomaly)


@pytest.mark.parametrize(
    ("level", "review_from", "expected"),
    [
        (0.0, 0.98, "pass"),
        (0.9799, 0.98, "pass"),
        (0.98, 0.98, "review"),  # exactly at the level: a person looks
        (1.0, 0.98, "review"),  # far beyond it: still only review
        (1.0, 1.0, "review"),
        (0.0, 0.0, "review"),  # a review level of 0 sends every covered piece to a person
        (None, 0.98, "pass"),  # no anomaly model for the design
        (0.999, None, "pass"),  # no review level: the anomaly model is not asked
    ],
)
def test_anomaly_level_edges(level: float | None, review_from: float | None, expected: str) -> None:
    v = decide([_photo(level)], BANDS, anomaly_review=review_from)
    assert v.decision == expected
    codes = [r.code for r in v.reasons]
    assert (UNUSUAL_SURFACE in codes) == (expected == "review")
    assert v.anomaly == level


@pytest.mark.parametrize(
    ("scratch", "spec", "expected"),
    [
        (0.9, None, "fail"),  # the classifier fails it: the anomaly does not soften that
        (0.5, None, "review"),  # both send it to review: both reasons are kept
        (0.0, "fail", "fail"),
        (0.0, "borderline", "review"),
    ],
)
def test_anomaly_never_overrides_a_fail_and_adds_its_reason(
    scratch: float, spec: str | None, expected: str
) -> None:
    checks = []
    if spec:
        checks = [
            CheckResult(
                name="size_outer_diameter", measured=31.0, expected=30.0, tolerance=1.5,
                unit="mm", result=spec, reason="size", defect="wrong_size",  # type: ignore[arg-type]
            )
        ]  # fmt: skip
    v = decide([_photo(0.995, scratch)], BANDS, checks, anomaly_review=0.98)
    assert v.decision == expected
    assert UNUSUAL_SURFACE in [r.code for r in v.reasons]
    assert UNUSUAL_SURFACE not in v.defects  # no defect class: nothing was named


def test_an_unusable_photo_anomaly_is_not_counted() -> None:
    photos = [_photo(0.999, 0.0, "blurry"), _photo(0.1)]
    v = decide(photos, BANDS, anomaly_review=0.98)
    assert v.decision == "pass" and v.anomaly == 0.1


def test_the_highest_level_over_usable_photos_decides() -> None:
    v = decide([_photo(0.1), _photo(0.985), _photo(None)], BANDS, anomaly_review=0.98)
    assert v.decision == "review" and v.anomaly == 0.985
    assert [p.anomaly for p in v.photos] == [0.1, 0.985, None]


@pytest.mark.parametrize("bad", [-0.01, 1.01, math.nan, math.inf])
def test_bad_anomaly_levels_are_errors(bad: float) -> None:
    with pytest.raises(ValueError, match="anomaly level"):
        decide([_photo(bad)], BANDS, anomaly_review=0.98)
    with pytest.raises(ValueError, match="anomaly_review"):
        decide([_photo(0.5)], BANDS, anomaly_review=bad)


@pytest.mark.parametrize("lang", ["en", "sw"])
def test_the_artisan_is_told_a_person_will_look(lang: str) -> None:
    text = review_message(UNUSUAL_SURFACE, lang)
    assert ("person" in text) if lang == "en" else ("Mtu" in text)
    with pytest.raises(ValueError):
        review_message("nope", lang)
