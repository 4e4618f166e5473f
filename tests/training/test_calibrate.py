"""Temperature scaling recovers a known temperature; thresholds meet their recall target."""

from __future__ import annotations

import numpy as np
import pytest

from training.calibrate import (
    apply_temperature,
    calibrate,
    choose_thresholds,
    fit_operating_point,
    fit_temperature,
    logits_from_probs,
    threshold_at_recall,
)
from training.metrics import any_defect


def _multilabel(true_t: float, n: int = 20_000, k: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2.0, size=(n, k))
    y = (rng.random((n, k)) < 1 / (1 + np.exp(-z))).astype(np.int64)
    return z * true_t, y  # an over-confident model: logits scaled by true_t


@pytest.mark.parametrize("true_t", [0.5, 1.0, 3.0])
def test_fit_temperature_recovers_the_scale_multilabel(true_t: float) -> None:
    logits, y = _multilabel(true_t)
    assert fit_temperature(logits, y, "multilabel") == pytest.approx(true_t, rel=0.08)


def test_fit_temperature_single_label_and_ece_drops() -> None:
    rng = np.random.default_rng(1)
    z = rng.normal(0, 2.0, size=(20_000, 4))
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(4, p=row) for row in p])
    cal = calibrate(z * 2.5, y, "single_label")
    assert cal.temperature == pytest.approx(2.5, rel=0.08)
    assert cal.ece_after < cal.ece_before / 3
    assert cal.nll_after < cal.nll_before


def test_probs_round_trip_through_logits() -> None:
    p = np.array([[0.1, 0.5, 0.99]])
    np.testing.assert_allclose(
        apply_temperature(logits_from_probs(p, "multilabel"), 1.0, "multilabel"), p
    )
    s = np.array([[0.2, 0.3, 0.5]])
    np.testing.assert_allclose(
        apply_temperature(logits_from_probs(s, "single_label"), 1.0, "single_label"), s
    )


def test_threshold_at_recall_is_the_highest_that_meets_it() -> None:
    rng = np.random.default_rng(2)
    s = rng.random(200)
    y = rng.random(200) < 0.5
    for target in (0.5, 0.9, 0.97, 1.0):
        t = threshold_at_recall(s, y, target)
        assert t is not None
        assert ((s >= t) & y).sum() / y.sum() >= target
        higher = s[y][s[y] > t]
        if higher.size:  # the next higher positive score would miss the target
            assert ((s >= higher.min()) & y).sum() / y.sum() < target
    assert threshold_at_recall(s, np.zeros(200, bool), 0.97) is None


def test_choose_thresholds_band_and_untuned_classes() -> None:
    logits, y = _multilabel(1.0, n=3000, seed=3)
    probs = apply_temperature(logits, 1.0, "multilabel")
    y[:, 2] = 0  # a class with no validation positives
    classes = ["scratch", "bent", "pitting"]
    choice = choose_thresholds(probs, y, classes, target_recall=0.97)
    assert choice.untuned == ["pitting"]
    for k, c in enumerate(classes[:2]):
        th = choice.thresholds[c]
        assert th.review_low == th.threshold <= th.review_high
        held = probs[:, k] >= th.review_high
        if th.review_high < 1.0:
            assert y[held, k].mean() >= 0.95
    vector = [choice.thresholds[c].threshold for c in classes]
    assert any_defect(probs, y, vector, classes).recall >= 0.97


def test_joint_thresholds_hold_fewer_good_photos_than_per_class_recall() -> None:
    # Five classes, each alone at 0.97 recall, hold far more good photos than a joint choice
    # that asks 0.97 of the union.
    rng = np.random.default_rng(8)
    n, k = 4000, 5
    y = (rng.random((n, k)) < 0.05).astype(np.int64)
    logits = rng.normal(-2.0, 1.0, (n, k)) + 3.0 * y
    probs = apply_temperature(logits, 1.0, "multilabel")
    classes = ["scratch", "bent", "pitting", "tarnish", "broken_link"]
    joint = choose_thresholds(probs, y, classes, target_recall=0.97)
    vector = [joint.thresholds[c].threshold for c in classes]
    r = any_defect(probs, y, vector, classes)
    per_class = [threshold_at_recall(probs[:, i], y[:, i], 0.97) for i in range(k)]
    naive = any_defect(probs, y, per_class, classes)
    assert r.recall >= 0.97
    assert r.false_hold_rate < naive.false_hold_rate
    assert joint.recall_level < 0.97


def test_operating_point_meets_recall_on_the_data_it_was_fitted_on() -> None:
    logits, y = _multilabel(2.0, n=4000, seed=4)
    raw = apply_temperature(logits, 1.0, "multilabel")
    classes = ["scratch", "bent", "pitting"]
    op = fit_operating_point(raw, y, classes, "multilabel", target_recall=0.97)
    assert op.calibration.temperature == pytest.approx(2.0, rel=0.15)
    r = any_defect(op.val_probs, y, op.threshold_vector(classes), classes)
    assert r.recall >= 0.97


def test_a_score_of_exactly_zero_is_a_valid_threshold() -> None:
    probs = np.array([[0.0], [0.6], [0.7], [0.8], [0.1]])
    y = np.array([[1], [1], [1], [1], [0]])
    t = choose_thresholds(probs, y, ["scratch"], target_recall=1.0).thresholds["scratch"]
    assert t.threshold == 0.0 and t.review_low == 0.0


def test_threshold_at_precision_matches_a_brute_force_search() -> None:
    from training.calibrate import threshold_at_precision

    rng = np.random.default_rng(5)
    for _ in range(20):
        y = rng.random(80) < 0.3
        s = np.round(rng.random(80) * 0.7 + 0.3 * y, 2)
        floor = float(rng.random() * 0.5)
        expected = 1.0
        for t in np.unique(s[s >= floor]):
            if y[s >= t].mean() >= 0.8:
                expected = float(t)
                break
        assert threshold_at_precision(s, y, 0.8, floor) == expected
