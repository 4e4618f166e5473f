"""research.unseen_class_proxy: dropping a class takes it out of the margin and the fail bands."""

from __future__ import annotations

import numpy as np
import pytest

from research.unseen_class_proxy import rates, without
from training.anomaly.fused import ClassifierScores, held_fused

pytestmark = pytest.mark.research


def test_a_dropped_class_no_longer_holds_and_the_others_still_do() -> None:
    c = ClassifierScores(
        probs=np.array([[0.95, 0.01], [0.01, 0.6], [0.01, 0.01]]),
        low=np.array([0.3, 0.3]),
        high=np.array([0.9, 0.9]),
    )
    centred = np.zeros(3)
    assert held_fused(c, centred, 1.0, 0.0).tolist() == [True, True, False]
    rest = without(c, ["broken_link", "scratch"], "broken_link")
    assert rest.probs.shape == (3, 1) and rest.low.tolist() == [0.3]
    assert held_fused(rest, centred, 1.0, 0.0).tolist() == [False, True, False]
    # An unusual photo is still held through the anomaly term alone.
    assert held_fused(rest, np.array([20.0, 0.0, 0.0]), 1.0, 0.0)[0]


def test_rates_of_no_photos_are_nan() -> None:
    assert np.isnan(rates(np.array([True]), np.array([False])))
    assert rates(np.array([True, False]), np.array([True, True])) == 0.5
