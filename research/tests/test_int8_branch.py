"""research.int8_branch: what counts as a moved decision and a moved feature."""

from __future__ import annotations

import numpy as np
import pytest

from research.int8_branch import drift

pytestmark = pytest.mark.research


def test_drift_counts_photos_crossing_either_edge_and_the_feature_change() -> None:
    ref = np.array([[0.10, 0.50], [0.20, 0.95], [0.40, 0.40]])
    moved = np.array([[0.12, 0.50], [0.20, 0.85], [0.25, 0.40]])
    low, high = np.array([0.3, 0.3]), np.array([0.9, 0.9])
    feats = [np.ones((4, 2)), np.ones((1, 2)), np.ones((2, 2))]
    d = drift(ref, moved, low, high, feats, [f * 1.1 for f in feats])
    # Photo 0 moved within its band; photo 1 left the fail band; photo 2 fell below review.
    assert d["crossing"] == 2
    assert d["max_dp"] == pytest.approx(0.15) and d["mean_dp"] == pytest.approx(0.045)
    assert d["feature_change"] == pytest.approx(0.1)
    same = drift(ref, ref, low, high, feats, feats)
    assert same["crossing"] == 0 and same["max_dp"] == 0.0 and same["feature_change"] == 0.0
