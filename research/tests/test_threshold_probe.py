"""The greedy per-class threshold search that research.threshold_probe weighs against the
common recall level of training.calibrate.choose_thresholds."""

from __future__ import annotations

import numpy as np
import pytest

from research.threshold_probe import common_level, compare, cross_validated, greedy_thresholds
from training.calibrate import choose_thresholds
from training.metrics import any_defect

CLASSES = ["scratch", "bent", "pitting", "tarnish"]


def _scores(seed: int, n: int = 1500) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.random((n, len(CLASSES))) < [0.04, 0.08, 0.05, 0.1]
    strength = np.array([0.8, 2.5, 1.2, 3.0])  # weak and strong classes, as in the real model
    logits = rng.normal(-2.0, 1.0, y.shape) + strength * y
    return 1 / (1 + np.exp(-logits)), y


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_greedy_meets_the_target_and_never_holds_more_good_photos_than_the_level(seed: int) -> None:
    p, y = _scores(seed)
    level = choose_thresholds(p, y, CLASSES, target_recall=0.97)
    lv = any_defect(p, y, [level.thresholds[c].threshold for c in CLASSES], CLASSES)
    gr = any_defect(p, y, greedy_thresholds(p, y, 0.97), CLASSES)
    assert gr.recall >= 0.97
    # Seven (here four) free thresholds fit the photos they were chosen on at least as well.
    assert gr.false_hold_rate <= lv.false_hold_rate


def test_every_threshold_is_as_high_as_the_target_allows() -> None:
    p, y = _scores(3)
    t = greedy_thresholds(p, y, 0.95)
    assert any_defect(p, y, t, CLASSES).recall >= 0.95
    for k in range(len(CLASSES)):
        higher = np.unique(p[:, k][p[:, k] > t[k]])
        if higher.size:  # the next score up on any class would miss the target
            bumped = list(t)
            bumped[k] = float(higher.min())
            assert any_defect(p, y, bumped, CLASSES).recall < 0.95


def test_a_class_covered_by_another_is_never_needed() -> None:
    # Every "bent" photo is also "tarnish", and tarnish is scored perfectly: bent never holds.
    rng = np.random.default_rng(4)
    n = 400
    tarnish = rng.random(n) < 0.3
    bent = tarnish & (rng.random(n) < 0.5)
    y = np.zeros((n, len(CLASSES)), bool)
    y[:, 1], y[:, 3] = bent, tarnish
    p = rng.random((n, len(CLASSES))) * 0.5
    p[:, 3] = np.where(tarnish, 0.9, 0.1)
    t = greedy_thresholds(p, y, 1.0)
    assert t[3] == pytest.approx(0.9)
    assert t[1] == 1.0 and t[0] == 1.0 and t[2] == 1.0
    assert any_defect(p, y, t, CLASSES).false_hold_rate == 0.0


def test_no_defective_photo_is_an_error() -> None:
    with pytest.raises(ValueError, match="no photo"):
        greedy_thresholds(np.full((5, 2), 0.5), np.zeros((5, 2), bool), 0.97)


def test_compare_scores_both_choosers_on_both_sets() -> None:
    (pv, yv), (pt, yt) = _scores(5), _scores(6)
    rows = compare((pv, yv), (pt, yt), CLASSES, targets=(0.97, 0.99))
    assert [(r["target"], r["chooser"]) for r in rows] == [
        (0.97, "common recall level"), (0.97, "greedy per class"),
        (0.99, "common recall level"), (0.99, "greedy per class"),
    ]  # fmt: skip
    for r in rows:
        assert float(r["val_recall"]) >= float(r["target"])
        assert 0.0 <= float(r["test_false_hold"]) <= 1.0


def test_cross_validation_scores_each_fold_with_thresholds_fitted_on_the_others() -> None:
    # Separable scores: any fold's thresholds hold every defective photo and no good one.
    rng = np.random.default_rng(5)
    y = rng.random((500, len(CLASSES))) < 0.05
    p = np.where(y, 0.9, rng.uniform(0.0, 0.4, y.shape))
    assert cross_validated(common_level(CLASSES), p, y, 1.0) == (1.0, 0.0)
    # A chooser that ignores what it is given: its thresholds are the same on every fold.
    seen: list[int] = []

    def fixed(fp: np.ndarray, fy: np.ndarray, target: float) -> list[float]:
        seen.append(len(fp))
        return [0.5] * len(CLASSES)

    recall, false_hold = cross_validated(fixed, p, y, 0.97, folds=4)
    assert seen == [375] * 4  # each fit sees the other three folds
    ad = any_defect(p, y, [0.5] * len(CLASSES), CLASSES)
    assert (recall, false_hold) == (ad.recall, ad.false_hold_rate)


@pytest.mark.parametrize("seed", [0, 1])
def test_greedy_promises_more_than_it_keeps_on_held_out_folds(seed: int) -> None:
    p, y = _scores(seed)
    fitted = any_defect(p, y, greedy_thresholds(p, y, 0.97), CLASSES).recall
    held_out, _ = cross_validated(greedy_thresholds, p, y, 0.97)
    assert fitted >= 0.97 and held_out < fitted
