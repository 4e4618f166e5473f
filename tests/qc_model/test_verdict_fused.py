"""qc_model.verdict's fused rule: margin + weight * centred against a threshold replaces the
review band and the anomaly level on the photos the anomaly model scores; t_high still fails."""

from __future__ import annotations

import math

import pytest
from gate_results import gate_result

from qc_model.messages import UNUSUAL_SURFACE
from qc_model.verdict import FusedRule, PhotoInput, decide, fused_score

BANDS = {"scratch": (0.3, 0.7), "tarnish": (0.5, 0.9)}
RULE = FusedRule(weight=2.0, threshold=0.5)


def _photo(scratch: float, centred: float | None, *failed: str) -> PhotoInput:
    return PhotoInput(
        gate=gate_result(*failed),
        probs={"scratch": scratch, "tarnish": 0.01},
        anomaly=0.5 if centred is not None else None,
        anomaly_centred=centred,
    )


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_the_score_is_the_highest_class_margin_plus_the_weighted_anomaly() -> None:
    from qc_model.verdict import as_bands

    bands = as_bands(BANDS)
    m = max(_logit(0.4) - _logit(0.3), _logit(0.01) - _logit(0.5))
    got = fused_score({"scratch": 0.4, "tarnish": 0.01}, bands, 0.25, 2.0)
    assert got == pytest.approx(m + 0.5)


@pytest.mark.parametrize(
    ("scratch", "centred", "decision", "codes"),
    [
        # In band (0.4 >= 0.3) but normal for the design: cleared, the piece passes.
        (0.4, -1.0, "pass", []),
        # In band and unusual enough: the class's review reason.
        (0.4, 0.5, "review", ["scratch"]),
        # Below the band, far from the design's good photos: held with no class to name.
        (0.05, 3.0, "review", [UNUSUAL_SURFACE]),
        # Below the band and ordinary: passes.
        (0.05, 0.0, "pass", []),
        # At the fail threshold: fails whatever the anomaly model says.
        (0.8, -5.0, "fail", ["scratch"]),
        # No anomaly score for the photo (no bank): the band decides as before.
        (0.4, None, "review", ["scratch"]),
        (0.05, None, "pass", []),
    ],
)
def test_fused_decisions(
    scratch: float, centred: float | None, decision: str, codes: list[str]
) -> None:
    v = decide([_photo(scratch, centred)], BANDS, fused=RULE, anomaly_review=0.0)
    assert v.decision == decision
    assert [r.code for r in v.reasons] == codes
    assert v.cleared == (["scratch"] if (scratch, centred) == (0.4, -1.0) else [])
    if centred is not None and v.decision != "fail":
        assert v.photos[0].fused is not None
        assert v.photos[0].call == ("review" if v.decision == "review" else "pass")


def test_the_threshold_is_inclusive() -> None:
    from qc_model.verdict import as_bands

    score = fused_score({"scratch": 0.05, "tarnish": 0.01}, as_bands(BANDS), 1.0, 2.0)
    at = FusedRule(weight=2.0, threshold=score)
    assert decide([_photo(0.05, 1.0)], BANDS, fused=at).decision == "review"
    above = FusedRule(weight=2.0, threshold=math.nextafter(score, math.inf))
    assert decide([_photo(0.05, 1.0)], BANDS, fused=above).decision == "pass"


def test_a_class_cleared_on_one_photo_still_counts_on_another() -> None:
    v = decide([_photo(0.4, -1.0), _photo(0.35, 0.6)], BANDS, fused=RULE)
    assert v.decision == "review" and v.defects == ["scratch"] and v.cleared == []


def test_unusable_photos_are_not_fused() -> None:
    v = decide([_photo(0.05, 9.0, "blur"), _photo(0.05, 0.0)], BANDS, fused=RULE)
    assert v.decision == "pass"
    assert v.photos[0].call == "unusable" and v.photos[0].fused is None


def test_a_non_finite_centred_score_is_an_error() -> None:
    with pytest.raises(ValueError, match="anomaly_centred"):
        decide([_photo(0.1, math.nan)], BANDS, fused=RULE)


def test_without_a_rule_the_centred_score_is_ignored() -> None:
    v = decide([_photo(0.05, 9.0)], BANDS, anomaly_review=0.99)
    assert v.decision == "pass" and v.photos[0].fused is None


def test_a_level_guard_holds_an_unusual_photo_whatever_the_margin() -> None:
    guarded = FusedRule(weight=0.01, threshold=5.0, guard=0.99)
    photo = PhotoInput(
        gate=gate_result(),
        probs={"scratch": 0.01, "tarnish": 0.01},
        anomaly=0.995,
        anomaly_centred=0.1,
    )
    v = decide([photo], BANDS, fused=guarded)
    assert v.decision == "review" and [r.code for r in v.reasons] == [UNUSUAL_SURFACE]
    below = photo.model_copy(update={"anomaly": 0.98})
    assert decide([below], BANDS, fused=guarded).decision == "pass"
    assert decide([photo], BANDS, fused=RULE).decision == "pass"  # no guard: the score decides
