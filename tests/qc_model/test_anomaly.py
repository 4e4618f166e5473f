"""qc_model.anomaly: nearest-neighbour scoring, calibration, bank choice and loading checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tiny_anomaly import bank_meta, grey_bank, grey_photo, write_tiny_anomaly

from qc_model.anomaly import (
    ANOMALY_BANKS,
    ANOMALY_META,
    AnomalyError,
    AnomalyModel,
    image_score,
    level_of,
    nearest_distances,
    score_at_level,
)
from qc_model.anomaly_input import piece_cells, prepare_input


@pytest.mark.parametrize("max_elements", [1, 7, 1 << 22])
def test_nearest_distances_match_brute_force_in_any_chunking(max_elements: int) -> None:
    rng = np.random.default_rng(0)
    q = rng.normal(size=(37, 5)).astype(np.float32)
    bank = rng.normal(size=(11, 5)).astype(np.float32)
    want = np.sqrt(((q[:, None, :] - bank[None]) ** 2).sum(-1)).min(1)
    got = nearest_distances(q, bank, max_elements=max_elements)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_a_query_in_the_bank_is_at_distance_zero() -> None:
    bank = np.eye(4, dtype=np.float32) * 3
    np.testing.assert_allclose(nearest_distances(bank, bank), 0.0, atol=1e-3)


@pytest.mark.parametrize(
    ("q", "bank"), [(np.zeros((2, 3)), np.zeros((0, 3))), (np.zeros((2, 3)), np.zeros((2, 4)))]
)
def test_nearest_distances_refuse_empty_or_mismatched_banks(
    q: np.ndarray, bank: np.ndarray
) -> None:
    with pytest.raises(ValueError):
        nearest_distances(q.astype(np.float32), bank.astype(np.float32))


@pytest.mark.parametrize(("k", "want"), [(1, 9.0), (2, 7.0), (3, 5.0), (10, 4.0)])
def test_image_score_is_the_mean_of_the_k_largest(k: int, want: float) -> None:
    assert image_score(np.array([1.0, 9.0, 5.0, 1.0], np.float32), k) == pytest.approx(want)


def test_image_score_of_no_patches_is_an_error() -> None:
    with pytest.raises(ValueError):
        image_score(np.zeros(0, np.float32), 3)


@pytest.mark.parametrize("level", [0.01, 0.5, 0.98, 0.999])
def test_score_at_level_inverts_level_of(level: float) -> None:
    bank = bank_meta(8, log_mu=np.log(0.3), log_sigma=0.4)
    assert level_of(score_at_level(level, bank), bank) == pytest.approx(level, abs=1e-6)


def test_level_is_one_half_at_the_median_good_score_and_rises_with_the_score() -> None:
    bank = bank_meta(8, log_mu=np.log(0.3), log_sigma=0.4)
    assert level_of(0.3, bank) == pytest.approx(0.5)
    assert level_of(0.1, bank) < level_of(0.3, bank) < level_of(1.0, bank)
    assert level_of(0.0, bank) == pytest.approx(0.0, abs=1e-6)


def test_a_grey_photo_is_normal_and_a_bright_patch_is_found_where_it_is(tmp_path: Path) -> None:
    write_tiny_anomaly(tmp_path, {"D1": grey_bank(0.0)})
    model = AnomalyModel(tmp_path, threads=1)
    normal = model.score(grey_photo(128), "D1")
    odd_photo = grey_photo(128)
    odd_photo[40:48, 16:24] = 255
    odd = model.score(odd_photo, "D1")
    assert normal is not None and odd is not None
    assert normal.bank == "design:D1" and not normal.fallback
    assert normal.level < 0.5 < odd.level
    assert odd.score > 10 * normal.score
    # the map's peak is the cell of the bright square (8-px cells: row 5, column 2)
    assert np.unravel_index(np.argmax(odd.heatmap), odd.heatmap.shape) == (5, 2)
    assert odd.heatmap.max() == pytest.approx(1.0) and odd.heatmap.min() >= 0.0


def test_a_design_without_a_bank_uses_its_family_and_says_so(tmp_path: Path) -> None:
    write_tiny_anomaly(
        tmp_path,
        {"D1": grey_bank(0.0)},
        families={"ring/silver": grey_bank(0.5)},
        family_of={"D2": "ring/silver"},
    )
    model = AnomalyModel(tmp_path, threads=1)
    r = model.score(grey_photo(191), "D2")
    assert r is not None and r.fallback and r.bank == "family:ring/silver"
    assert model.score(grey_photo(128), "UNKNOWN") is None
    assert model.score(grey_photo(128), None) is None  # no bank for photos of no design
    assert model.covers("D1") and model.covers("D2") and not model.covers("D3")
    assert model.summary()["fallback"] == ["D2"]


def test_photos_of_no_design_use_the_star_bank(tmp_path: Path) -> None:
    write_tiny_anomaly(tmp_path, {"*": grey_bank(0.0)})
    r = AnomalyModel(tmp_path, threads=1).score(grey_photo(128), None)
    assert r is not None and r.bank == "design:*"


@pytest.mark.parametrize("broken", ["banks", "meta_field", "missing_meta"])
def test_a_broken_anomaly_model_is_refused_with_the_file_named(tmp_path: Path, broken: str) -> None:
    write_tiny_anomaly(tmp_path, {"D1": grey_bank(0.0)})
    if broken == "banks":
        np.savez(tmp_path / ANOMALY_BANKS, **{"design:D1": np.zeros((3, 3), np.float16)})
        match = "checksum"
    elif broken == "meta_field":
        meta = json.loads((tmp_path / ANOMALY_META).read_text())
        meta["false_hold"] = 2.0
        (tmp_path / ANOMALY_META).write_text(json.dumps(meta))
        match = "false_hold"
    else:
        (tmp_path / ANOMALY_META).unlink()
        match = "no anomaly.json"
    with pytest.raises(AnomalyError, match=match):
        AnomalyModel(tmp_path, threads=1)


def test_input_of_a_photo_without_a_mat_is_the_whole_photo_shrunk_and_padded() -> None:
    photo = np.zeros((90, 130, 3), np.uint8)
    inp = prepare_input(photo, px_per_mm=None, max_side=65, pad_to=16)
    assert inp.box == (0, 0, 130, 90) and inp.px_per_mm is None and inp.piece is None
    assert inp.size == (45, 65) and inp.tensor.shape == (3, 48, 80)
    assert inp.tensor.min() == pytest.approx(-1.0)


def test_piece_cells_reach_the_margin_around_the_piece() -> None:
    piece = np.zeros((32, 32), bool)
    piece[12:14, 12:14] = True
    assert piece_cells(None, (4, 4), 8, 16).all()
    near = piece_cells(piece, (4, 4), 8, 0)
    assert near.sum() == 1 and near[1, 1]
    assert piece_cells(piece, (4, 4), 8, 8).sum() == 9
