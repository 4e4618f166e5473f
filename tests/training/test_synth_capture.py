"""Capture conditions: each one, when applied, is labeled and visible in the photo's geometry."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from qc_model.catalog import default_catalog_dir
from qc_model.mat import detect_mat
from qc_model.taxonomy import CAPTURE_CONDITIONS
from training.synth.designs import load_designs
from training.synth.photo import make_item, render_photo


@pytest.fixture(scope="module")
def cuff():
    design = next(d for d in load_designs(default_catalog_dir()) if d.id == "KQ-CUFF-BR-65")
    return make_item(design, seed=0, piece=0, defect_rate=0.0)


@pytest.mark.parametrize("condition", CAPTURE_CONDITIONS)
def test_forced_condition_is_labeled(cuff, condition):
    photo = render_photo(cuff, 0, 0, 0, 320, 0.5, force=(condition,))
    assert condition in photo.capture
    h, w = photo.image.shape[:2]
    meta = photo.meta
    if condition == "no_mat":
        assert not meta["mat_visible"] and meta["markers_in_frame"] == []
    if condition == "mat_cut_off":
        assert meta["mat_visible"] and len(meta["markers_in_frame"]) < 8
    if condition == "low_resolution":
        assert max(h, w) < 320
    if condition == "partly_out_of_frame":
        x0, y0, x1, y1 = meta["pieces"][0]["bbox_px"]
        assert x0 == 0 or y0 == 0 or x1 == w or y1 == h
    assert photo.piece_mask.shape == (h, w) and photo.piece_mask.any()


def test_difficulty_zero_is_clean_and_difficulty_scales_conditions(cuff):
    counts = []
    for difficulty in (0.0, 0.5, 1.0):
        n = 0
        for shot in range(6):
            photo = render_photo(cuff, 1, 0, shot, 256, difficulty)
            n += len(photo.capture)
        counts.append(n)
    assert counts[0] == 0
    assert counts[0] < counts[1] < counts[2]


def test_no_mat_photo_has_no_markers_to_find(cuff):
    photo = render_photo(cuff, 0, 0, 0, 1024, 0.0, force=("no_mat",))
    assert detect_mat(cv2.cvtColor(photo.image, cv2.COLOR_BGR2GRAY)) is None


def test_homography_in_meta_maps_the_mat_to_the_photo(cuff):
    photo = render_photo(cuff, 0, 0, 1, 1024, 0.6, force=("perspective", "rotation"))
    det = detect_mat(cv2.cvtColor(photo.image, cv2.COLOR_BGR2GRAY))
    assert det is not None and len(det.marker_ids) >= 2
    hom = np.asarray(photo.meta["mat_to_image"])
    pts = np.array([[60.0, 60.0], [240.0, 150.0], [148.5, 105.0]])
    q = cv2.perspectiveTransform(pts.reshape(-1, 1, 2), hom).reshape(-1, 2)
    back = det.to_mat(q)
    assert np.abs(back - pts).max() < 1.5  # mm, through a real marker detection


@pytest.mark.slow
def test_twelve_megapixel_photo(cuff):
    photo = render_photo(cuff, 0, 0, 0, 4000, 0.5)
    if "low_resolution" not in photo.capture:
        assert photo.image.shape[:2] == (3000, 4000)
    assert photo.piece_mask.any()


def test_pair_lies_side_by_side_and_each_piece_has_its_truth():
    design = next(d for d in load_designs(default_catalog_dir()) if d.id == "KQ-HOOP-BR-30")
    item = make_item(design, seed=0, piece=1, defect_rate=0.0)
    photo = render_photo(item, 0, 1, 0, 512, 0.0)
    left, right = photo.meta["pieces"]
    assert left["bbox_px"][2] <= right["bbox_px"][0]  # disjoint, left to right
    for p in (left, right):
        dim = design.dimensions[0]
        assert abs(p["dims_mm"]["outer_diameter"] - dim.nominal_mm) < dim.tolerance_mm
    n, _ = cv2.connectedComponents(photo.piece_mask.astype(np.uint8))
    assert n - 1 == 2  # two separate earrings in the piece mask
