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
