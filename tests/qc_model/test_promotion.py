"""The promotion gate: the 0.5-point holdout rule and the reviewed-batch rule, at their edges."""

from __future__ import annotations

import json
import math

import pytest

from qc_model.promotion import MAX_DROP, Scores, promotion_gate

NAN = math.nan
CHAMP = Scores(photos=100, macro_f1=0.80, any_recall=0.95, agreement=0.90)
REVIEWED = Scores(photos=30, macro_f1=0.60, any_recall=0.90, agreement=0.80)


def gate(holdout: Scores, reviewed: Scores, champ_reviewed: Scores = REVIEWED):  # type: ignore[no-untyped-def]
    return promotion_gate(CHAMP, holdout, champ_reviewed, reviewed)


def better_reviewed(**kw: float) -> Scores:
    return Scores(**{"photos": 30, "macro_f1": 0.70, "any_recall": 0.9, "agreement": 0.85, **kw})


def holdout(**kw: float) -> Scores:
    return Scores(**{"photos": 100, "macro_f1": 0.80, "any_recall": 0.95, "agreement": 0.9, **kw})


def test_equal_on_holdout_better_on_reviewed_passes() -> None:
    r = gate(holdout(), better_reviewed())
    assert r.passed and r.reasons == [] and [c.passed for c in r.checks] == [True] * 3
    json.dumps(r.as_dict())  # stored in the registry as JSON


@pytest.mark.parametrize(
    ("macro_f1", "passed"),
    [
        (0.80 - MAX_DROP, True),  # exactly 0.5 points lost: "not more than" 0.5
        (0.80 - 0.0049, True),
        (0.80 - 0.0051, False),
        (0.70, False),
        (0.95, True),  # better is fine
    ],
)
def test_holdout_macro_f1_may_lose_at_most_half_a_point(macro_f1: float, passed: bool) -> None:
    r = gate(holdout(macro_f1=macro_f1), better_reviewed())
    assert r.passed is passed
    if not passed:
        assert len(r.reasons) == 1 and r.reasons[0].startswith("holdout macro-F1: champion 80.0")


@pytest.mark.parametrize(
    ("recall", "passed"), [(0.95 - MAX_DROP, True), (0.944, False), (1.0, True), (0.5, False)]
)
def test_holdout_any_defect_recall_may_lose_at_most_half_a_point(
    recall: float, passed: bool
) -> None:
    r = gate(holdout(any_recall=recall), better_reviewed())
    assert r.passed is passed
    if not passed:
        assert r.reasons[0].startswith("holdout any-defect recall")


def test_a_better_holdout_does_not_excuse_a_worse_reviewed_batch() -> None:
    r = gate(holdout(macro_f1=0.99, any_recall=1.0), better_reviewed(macro_f1=0.55))
    assert not r.passed and r.reasons == [
        "reviewed macro-F1: champion 60.0, challenger 55.0 (must improve)"
    ]


def test_equal_on_the_reviewed_batch_is_not_an_improvement() -> None:
    same = better_reviewed(macro_f1=0.60, agreement=0.80)
    r = gate(holdout(), same)
    assert not r.passed and "agreement with QC must improve" in r.reasons[0]


def test_a_macro_f1_tie_is_broken_by_agreement_with_qc() -> None:
    assert gate(holdout(), better_reviewed(macro_f1=0.60, agreement=0.81)).passed
    # Agreement does not override a macro-F1 that differs.
    assert not gate(holdout(), better_reviewed(macro_f1=0.59, agreement=0.99)).passed


def test_a_batch_without_defects_is_judged_by_agreement() -> None:
    champ = Scores(photos=10, macro_f1=NAN, any_recall=NAN, agreement=0.7)
    assert gate(holdout(), Scores(10, NAN, NAN, 0.8), champ).passed
    r = gate(holdout(), Scores(10, NAN, NAN, 0.7), champ)
    assert not r.passed and "no defective photos" in r.reasons[0]


def test_no_reviewed_photos_held_out_fails() -> None:
    r = gate(holdout(), Scores(0, NAN, NAN, NAN), Scores(0, NAN, NAN, NAN))
    assert not r.passed and "no reviewed photos held out" in r.reasons[0]


def test_an_unmeasurable_holdout_fails() -> None:
    r = promotion_gate(
        holdout(any_recall=NAN), holdout(any_recall=NAN), REVIEWED, better_reviewed()
    )
    assert not r.passed and "cannot be measured on the holdout" in r.reasons[0]


def test_every_failed_rule_is_reported() -> None:
    r = gate(holdout(macro_f1=0.5, any_recall=0.5), better_reviewed(macro_f1=0.1))
    assert not r.passed and len(r.reasons) == 3
    d = r.as_dict()
    assert [c["passed"] for c in d["checks"]] == [False, False, False]
    assert d["checks"][0]["delta"] == pytest.approx(-0.3)
