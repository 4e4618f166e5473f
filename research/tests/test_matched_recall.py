"""research.matched_recall: false-hold read off the photos at each recall asked for."""

from __future__ import annotations

import numpy as np
import pytest

from research.matched_recall import curve

pytestmark = pytest.mark.research


def test_curve_holds_the_fewest_good_photos_that_reach_each_recall() -> None:
    score = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    bad = np.array([True, False, True, False, True, False, False, True])
    # Recall 0.5: threshold 0.7 holds 2 of 4 bad and 1 of 4 good; 0.75 needs 0.5 (2 good);
    # 1.0 needs 0.2, which holds every good photo.
    assert curve(score, bad, (0.5, 0.75, 1.0)) == [0.25, 0.5, 1.0]


def test_paired_bootstrap_of_a_run_against_itself_is_zero_and_sees_a_better_one() -> None:
    from research.matched_recall import paired_bootstrap

    rng = np.random.default_rng(1)
    bad = rng.random(200) < 0.3
    score = rng.normal(size=200) + 1.5 * bad
    first = {str(i): (bool(b), float(s)) for i, (b, s) in enumerate(zip(bad, score, strict=True))}
    same = paired_bootstrap(first, first, (0.8, 0.9), 50)
    assert same.shape == (50, 2) and not same.any()
    # A score that separates better holds fewer good photos at every recall, resample by resample.
    better = {k: (b, s + 3.0 * b) for k, (b, s) in first.items()}
    assert (paired_bootstrap(first, better, (0.8, 0.9), 50) <= 0).all()
