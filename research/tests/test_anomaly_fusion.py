"""research.anomaly_fusion: the classifier's margin over its thresholds and the (d, L) chooser."""

from __future__ import annotations

import numpy as np
import pytest

from research.anomaly_fusion import choose, margin, rates


def test_margin_is_zero_at_the_threshold_and_follows_the_most_confident_class() -> None:
    probs = np.array([[0.2, 0.5], [0.9, 0.1]])
    m = margin(probs, np.array([0.2, 0.9]))
    assert m[0] == pytest.approx(0.0)  # class 0 exactly at its threshold, class 1 below
    assert m[1] == pytest.approx(np.log(0.9 / 0.1) - np.log(0.2 / 0.8))


def test_fused_choice_meets_the_recall_and_never_holds_more_than_the_classifier() -> None:
    rng = np.random.default_rng(0)
    bad = rng.random(400) < 0.3
    m = rng.normal(0, 1, 400) + 1.5 * bad
    lv = np.where(bad & (rng.random(400) < 0.5), 0.99, rng.random(400) * 0.9)  # sees half
    for fused in (False, True):
        d, L = choose(m, lv, bad, 0.9, fused)
        assert rates((m >= d) | (lv >= L), bad)[0] >= 0.9
    cls = rates(m >= choose(m, lv, bad, 0.9, False)[0], bad)[1]
    d, L = choose(m, lv, bad, 0.9, True)
    assert rates((m >= d) | (lv >= L), bad)[1] <= cls
