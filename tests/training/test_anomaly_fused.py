"""training.anomaly.fused: the fused rule over many photos agrees with the verdict photo by
photo, and its choice on labelled photos reaches the target recall with the fewest holds."""

from __future__ import annotations

import numpy as np
import pytest

from qc_model.errors import DataError
from qc_model.verdict import FusedRule, PhotoInput, decide
from training.anomaly.fused import (
    ClassifierScores,
    choose_rule,
    held_classifier,
    held_fused,
)

LOW, HIGH = np.array([0.3, 0.5]), np.array([0.8, 0.9])


def _scores(probs: list[list[float]]) -> ClassifierScores:
    return ClassifierScores(probs=np.array(probs, np.float64), low=LOW, high=HIGH)


def test_held_fused_is_what_the_verdict_decides() -> None:
    rng = np.random.default_rng(0)
    probs = rng.uniform(0.0, 0.95, (200, 2))
    centred = rng.normal(0.0, 1.0, 200)
    centred[::7] = np.nan  # no bank for these photos
    c = _scores(probs.tolist())
    held = held_fused(c, centred, 1.5, 0.3)
    bands = {"scratch": (0.3, 0.8), "tarnish": (0.5, 0.9)}
    for i in range(200):
        ci = None if np.isnan(centred[i]) else float(centred[i])
        photo = PhotoInput(
            probs={"scratch": float(probs[i, 0]), "tarnish": float(probs[i, 1])},
            anomaly=None if ci is None else 0.5,
            anomaly_centred=ci,
        )
        v = decide([photo], bands, fused=FusedRule(weight=1.5, threshold=0.3))
        assert (v.decision != "pass") == bool(held[i]), i


def test_the_classifier_alone_holds_at_its_review_bands() -> None:
    c = _scores([[0.29, 0.1], [0.3, 0.1], [0.1, 0.5]])
    assert held_classifier(c).tolist() == [False, True, True]


def test_the_choice_reaches_the_target_with_fewer_holds_than_the_classifier() -> None:
    # Defective photos: weak class scores but unusual; good ones: some in band but normal.
    probs = [[0.35, 0.1]] * 10 + [[0.1, 0.1]] * 10 + [[0.35, 0.1]] * 10 + [[0.1, 0.1]] * 10
    bad = np.array([True] * 20 + [False] * 20)
    centred = np.array([1.0] * 20 + [-1.0] * 20)
    c = _scores(probs)
    w, t, recall, false_hold = choose_rule(c, centred, bad, 1.0)
    held = held_fused(c, centred, w, t)
    assert recall == 1.0 and held[bad].all()
    assert false_hold == pytest.approx(held[~bad].mean()) and false_hold == 0.0
    alone = held_classifier(c)
    assert alone[bad].mean() == 0.5 and alone[~bad].mean() == 0.5


def test_no_rule_or_no_scores_is_a_clear_error() -> None:
    c = _scores([[0.1, 0.1], [0.1, 0.1]])
    with pytest.raises(DataError, match="good and defective"):
        choose_rule(c, np.array([0.0, 0.0]), np.array([True, True]), 0.9)
    with pytest.raises(DataError, match="no photo has an anomaly score"):
        choose_rule(c, np.array([np.nan, np.nan]), np.array([True, False]), 0.9)


def test_each_decision_is_compared_at_the_others_recall() -> None:
    from training.anomaly.fused import false_hold_at_recall, matched_recall

    score = np.array([3.0, 2.0, 1.0, 2.5, 0.5, 0.1])
    bad = np.array([True, True, True, False, False, False])
    # At 2/3 the threshold 1.0 holds as few good photos as 2.0 and more defective ones.
    assert false_hold_at_recall(score, bad, 2 / 3) == pytest.approx((1.0, 1 / 3))
    assert false_hold_at_recall(score, bad, 1.0) == pytest.approx((1.0, 1 / 3))
    # The earlier case: at the fused rule's recall (1.0) the classifier's margin holds half
    # the good photos; the fused score at the classifier's recall (0.5) holds none.
    probs = [[0.35, 0.1]] * 10 + [[0.1, 0.1]] * 10 + [[0.35, 0.1]] * 10 + [[0.1, 0.1]] * 10
    c = _scores(probs)
    bad = np.array([True] * 20 + [False] * 20)
    centred = np.array([1.0] * 20 + [-1.0] * 20)
    rule = held_fused(c, centred, 4.0, 0.0)
    rows = matched_recall(c, centred, 4.0, bad, rule)
    cls = rows["classifier at the fused rule's recall"]
    assert cls["recall"] == 1.0 and cls["false_hold_rate"] == 1.0
    fused = rows["fused score at the classifier's recall"]
    assert fused["recall"] >= 0.5 and fused["false_hold_rate"] == 0.0


def test_the_guard_is_the_lowest_level_within_the_budget() -> None:
    from training.anomaly.fused import choose_guard

    held = np.array([False, False, False, False, True, False])
    bad = np.array([False, False, False, False, True, True])
    levels = np.array([0.1, 0.5, 0.9, 0.99, 0.2, 0.95])
    # Four good photos: each one more held costs 0.25 of them.
    assert choose_guard(held, levels, bad, 0.0) == (None, 0.0)
    assert choose_guard(held, levels, bad, 0.25) == (0.99, 0.25)
    assert choose_guard(held, levels, bad, 0.5) == (0.9, 0.5)
    level, fh = choose_guard(held, levels, bad, 0.5)
    c = _scores([[0.1, 0.1]] * 6)
    guarded = held_fused(c, np.zeros(6), 1.0, 100.0, levels=levels, guard=level)
    assert guarded.tolist() == [False, False, True, True, False, True]
    assert guarded[~bad].mean() == fh
