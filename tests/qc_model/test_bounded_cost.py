"""Bounded-cost versions of the measuring steps agree with the full-resolution ones they replace."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from test_measure import bgr, design, hoops, photo

from qc_model.finish import piece_and_ring
from qc_model.gate import check_photo, decode_long_side, find_mat, top_percentile
from qc_model.locate import _upsample, work_copy
from qc_model.mat import detect_mat
from qc_model.measure import close_by_distance, disc, split_pieces

HOOP = design("KQ-HOOP-BR-30")


def blobs(shape: tuple[int, int], n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = np.zeros(shape, np.uint8)
    for _ in range(n):
        centre = (int(rng.integers(40, shape[1] - 40)), int(rng.integers(40, shape[0] - 40)))
        cv2.circle(m, centre, int(rng.integers(3, 14)), 255, -1)
    return m


@pytest.mark.parametrize("radius", [3, 8, 20])
def test_closing_by_distance_matches_disc_closing(radius: int) -> None:
    m = blobs((400, 500), 40, seed=radius)
    ref = cv2.morphologyEx(m, cv2.MORPH_CLOSE, disc(radius))
    got = close_by_distance(cv2.distanceTransform(255 - m, cv2.DIST_L2, 5), radius)
    assert np.mean(ref != got) < 0.002


def test_ring_and_inset_match_dilation_and_erosion() -> None:
    m = blobs((600, 700), 6, seed=1)
    inner, ring, (x0, y0) = piece_and_ring(m, ppm=3.0, inset_mm=1.0)
    h, w = inner.shape
    ref_inner = cv2.erode(m, disc(3.0))[y0 : y0 + h, x0 : x0 + w] > 0
    near = cv2.dilate(m, disc(9.0)) > 0
    ref_ring = ((cv2.dilate(m, disc(36.0)) > 0) & ~near)[y0 : y0 + h, x0 : x0 + w]
    assert np.mean(inner != ref_inner) < 0.002 and np.mean(ring != ref_ring) < 0.01
    # The crop holds the whole ring: nothing of it lies outside.
    assert (cv2.dilate(m, disc(36.0)) > 0).sum() - near.sum() == pytest.approx(ring.sum(), 0.02)


def test_upsampled_box_matches_a_full_resize() -> None:
    small = blobs((576, 768), 5, seed=3)
    ref = np.where(cv2.resize(small, (2016, 1512), interpolation=cv2.INTER_LINEAR) >= 128, 255, 0)
    got = _upsample(small, (1512, 2016))
    # Only fixed-point rounding on the boundary differs (a shifted mask would differ far more).
    assert np.sum(ref != got) < 0.01 * np.sum(ref > 0)


def test_split_pieces_keeps_image_coordinates() -> None:
    m = np.zeros((300, 400), np.uint8)
    cv2.circle(m, (100, 150), 30, 255, -1)
    cv2.circle(m, (300, 150), 20, 255, -1)
    cv2.circle(m, (130, 200), 2, 255, -1)  # a speck that joins the nearer piece
    big, small = split_pieces(m, 2)
    assert big.shape == m.shape and big[150, 100] == 255 and big[200, 130] == 255
    assert small[150, 300] == 255 and small[150, 100] == 0


@pytest.mark.parametrize("max_side", [1200, 768, 600])
def test_markers_found_on_a_bounded_copy_give_the_same_scale(max_side: int) -> None:
    # Searched on the small copy, the corners are refined on the photo itself: the homography
    # keeps full-resolution precision (it agreed to 0.0002 mm when written).
    img = photo(hoops(30.0, bgr(HOOP.finish.lab)), size=2400, seed=2)
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    full, bounded = detect_mat(gray), find_mat(gray, max_side=max_side)
    assert full is not None and bounded is not None
    assert bounded.marker_ids == full.marker_ids
    assert bounded.px_per_mm == pytest.approx(full.px_per_mm, rel=1e-3)
    pts = np.array([[600.0, 500.0], [1800.0, 1300.0]])
    assert np.abs(bounded.to_mat(pts) - full.to_mat(pts)).max() < 0.02  # mm
    assert check_photo(img, HOOP).passed


def test_the_gates_shared_work_copy_finds_the_same_mat() -> None:
    img = photo(hoops(30.0, bgr(HOOP.finish.lab)), size=2400, seed=2)
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    given = find_mat(gray, work=cv2.cvtColor(work_copy(img), cv2.COLOR_BGR2GRAY))
    own = find_mat(gray)
    gate = check_photo(img, HOOP)
    assert given is not None and own is not None and gate.mat is not None
    assert given.marker_ids == own.marker_ids == gate.mat.marker_ids
    assert np.allclose(given.image_to_mat, gate.mat.image_to_mat)
    assert given.px_per_mm == pytest.approx(own.px_per_mm, rel=1e-3)


def test_decode_size_follows_the_tightest_tolerance() -> None:
    loose, tight = design("KQ-HOOP-BR-50"), design("KQ-RING-BR-21")  # ± 2.0 mm, ± 0.8 mm
    assert decode_long_side(loose) < decode_long_side(tight)
    assert decode_long_side(loose, floor=3000) == 3000
    # A model that reads photos at 4.5 px/mm needs the frame's 370 mm at that scale.
    assert decode_long_side(loose, model_px_per_mm=4.5) == 1665 > decode_long_side(loose)
    assert decode_long_side(tight, model_px_per_mm=0.5) == decode_long_side(tight)


@pytest.mark.parametrize("shape", [(10, 10), (300, 400), (257, 1031)])
def test_top_percentile_is_numpy_percentile(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(shape[0])
    for a in (
        np.abs(rng.normal(size=shape)).astype(np.float32),
        rng.integers(0, 4, shape).astype(np.float32),  # heavy ties
    ):
        for q in (99.0, 99.5):
            assert top_percentile(a, q) == pytest.approx(float(np.percentile(a, q)), rel=1e-6)
        assert -top_percentile(-a, 99.0) == pytest.approx(float(np.percentile(a, 1)), rel=1e-6)
