"""Marker detection pieces: the detector split into search, corner refinement and homography."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from qc_model.mat import DEFAULT_MAT, detect_markers, detect_mat, mat_from_markers, refine_corners


def card(px_per_mm: float = 4.0, blur: float = 1.0) -> np.ndarray:
    """The mat rendered, seen at a slant and slightly out of focus, on a grey table."""
    flat = cv2.cvtColor(DEFAULT_MAT.render(px_per_mm), cv2.COLOR_BGR2GRAY)
    h, w = flat.shape
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = np.float32([[60, 40], [w + 20, 70], [w - 10, h + 50], [40, h + 30]])
    warp = cv2.getPerspectiveTransform(src, dst)
    seen = cv2.warpPerspective(flat, warp, (w + 100, h + 100), borderValue=90)
    return np.asarray(cv2.GaussianBlur(seen, (0, 0), blur), np.uint8)


def test_detect_mat_is_search_then_homography() -> None:
    gray = card()
    corners, ids = detect_markers(gray)
    assert sorted(ids) == list(range(8))
    split, whole = mat_from_markers(corners, ids), detect_mat(gray)
    assert split is not None and whole is not None
    assert split.marker_ids == whole.marker_ids
    assert np.array_equal(split.image_to_mat, whole.image_to_mat)


def test_no_markers_gives_no_mat() -> None:
    assert detect_markers(np.full((300, 400), 200, np.uint8)) == ([], [])
    assert mat_from_markers([], []) is None


@pytest.mark.parametrize("blur", [0.7, 1.5])
def test_refined_corners_return_to_the_detectors_own(blur: float) -> None:
    # A corner estimated on a smaller copy starts up to a pixel off; refining it on the photo
    # must land where the detector, searching the photo itself, puts it.
    gray = card(blur=blur)
    corners, ids = detect_markers(gray)
    assert sorted(ids) == list(range(8)), "the detector must find all eight markers to refine"
    rng = np.random.default_rng(0)
    for quad in corners:
        start = quad + rng.uniform(-0.8, 0.8, quad.shape).astype(np.float32)
        given = start.copy()
        refined = refine_corners(gray, start)
        assert np.abs(refined - quad).max() < 0.1
        assert np.array_equal(start, given)  # the estimate handed in is left alone
        assert np.abs(start - quad).max() > 0.2  # the test did move them
