"""training.surface_probe: native-resolution crops, per-cell targets and a whole probe run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qc_model.catalog import default_catalog_dir
from qc_model.errors import DataError
from qc_model.inference import read_image
from qc_model.preprocess import PreprocessConfig, crop_to_piece
from qc_model.taxonomy import VISUAL_DEFECTS
from training.surface_probe import (
    STRIDE,
    PatchSampler,
    Sample,
    _window,
    cell_targets,
    fuse,
    main,
    native_sample,
    operating_point,
    table,
)
from training.synth.generate import SynthOptions, generate_dataset

BUNDLED = Path(__file__).parents[2] / "models" / "default"


def test_cell_targets_mark_every_cell_a_mask_pixel_falls_in() -> None:
    bits = np.zeros((24, 16), np.uint8)
    bits[3, 9] = 0b01  # class 0 in cell (0, 1)
    bits[17, 0] = 0b10  # class 1 in cell (2, 0)
    bits[8, 8] = 0b11  # both in cell (1, 1)
    t = cell_targets(bits, 2)
    assert t.shape == (2, 3, 2)
    assert t[0].tolist() == [[0, 1], [0, 1], [0, 0]]
    assert t[1].tolist() == [[0, 0], [0, 1], [1, 0]]


def test_window_pads_with_zeros_past_the_edge() -> None:
    a = np.arange(16, dtype=np.uint8).reshape(4, 4)
    w = _window(a, -1, 2, 3)
    assert w.tolist() == [[0, 0, 0], [2, 3, 0], [6, 7, 0]]


def _sample(h: int, w: int, defect_at: tuple[int, int] | None) -> Sample:
    bits = np.zeros((h, w), np.uint8)
    if defect_at:
        bits[defect_at] = 0b100
    labels = np.array([False, False, defect_at is not None])
    return Sample(np.full((h, w, 3), 128, np.uint8), bits, labels, "d")


def test_sampler_centres_half_the_patches_on_defects_and_keeps_targets_aligned() -> None:
    samples = [_sample(300, 200, (150, 100)), _sample(90, 60, None)]  # one smaller than a patch
    sampler = PatchSampler(samples, k=3, patch=64, seed=1)
    x, y = sampler.batch(200)
    assert x.shape == (200, 3, 64, 64) and y.shape == (200, 3, 64 // STRIDE, 64 // STRIDE)
    assert x.min() >= -1.0 and x.max() <= 1.0
    with_defect = y[:, 2].reshape(200, -1).max(axis=1)
    # About half the patches are aimed at the single defect pixel (jitter keeps it inside).
    assert 0.35 < with_defect.mean() < 0.75
    assert y[:, :2].sum() == 0  # classes 0 and 1 are nowhere
    assert np.all(y[:, 2].reshape(200, -1).sum(axis=1) <= 1)  # one pixel, one cell
    with pytest.raises(DataError, match="multiple of 8"):
        PatchSampler(samples, k=3, patch=60, seed=1)


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("probe") / "d"
    opts = SynthOptions(count=12, size=512, defect_rate=0.6, difficulty=0.3, seed=7)
    generate_dataset(default_catalog_dir(), root, opts, workers=1)
    return root


def test_native_sample_is_the_locators_box_at_photo_resolution(synth: Path) -> None:
    from qc_model.manifest import Manifest

    m = Manifest.read(synth / "manifest.jsonl")
    rec = next(r for r in m.records if r.masks)
    s = native_sample(rec, synth, list(VISUAL_DEFECTS), PreprocessConfig())
    box = crop_to_piece(read_image(synth / rec.image), PreprocessConfig()).box
    assert s.image.shape[:2] == (box[3] - box[1], box[2] - box[0])  # not resized
    assert s.labels.tolist() == [c in rec.labels for c in VISUAL_DEFECTS]
    for k, c in enumerate(VISUAL_DEFECTS):
        # Each labelled defect with a mask leaves bits inside the crop.
        assert bool(np.any(s.bits & (1 << k))) == (c in rec.masks and c in rec.labels)


def test_a_whole_run_writes_scores_a_table_and_a_plot(synth: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    main([
        "--train", f"{synth}/manifest.jsonl:train", "--test", f"{synth}/manifest.jsonl",
        "--out", str(out), "--steps", "3", "--batch", "4", "--patch", "64", "--workers", "1",
    ])  # fmt: skip
    report = json.loads((out / "results.json").read_text())
    rows = report["results"]["probe"]
    assert set(rows) == set(VISUAL_DEFECTS) and report["sets"]["test"]["photos"] == 12
    assert report["timing"]["patches"] == 12
    assert (out / "within_design_auroc.png").stat().st_size > 1000
    assert "| scratch |" in (out / "results.md").read_text()

    # The saved probe scored again beside the bundled package, thresholds from validation.
    again = tmp_path / "again"
    main([
        "--train", str(synth), "--test", str(synth), "--val", str(synth),
        "--package", str(BUNDLED), "--load", str(out / "probe.pt"), "--out", str(again),
        "--workers", "1",
    ])  # fmt: skip
    report = json.loads((again / "results.json").read_text())
    assert report["train"]["photos"] == 0 and report["timing"] == {}
    assert set(report["operating_points"]) == {"probe", "package", "fused"}
    assert set(report["fused_source"].values()) <= {"probe", "package"}
    # Thresholds chosen on the same photos they are tested on reach the recall they aimed at.
    assert all(pt["recall"] >= 0.97 for pt in report["operating_points"].values())
    assert "| fused |" in (again / "results.md").read_text()
    with np.load(again / "scores.npz") as z:
        assert z["test_probe"].shape == z["val_package"].shape == (12, len(VISUAL_DEFECTS))
        assert z["test_truth"].sum() > 0 and len(z["val_design"]) == 12


def test_bad_arguments_are_clear_errors(synth: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no photos in split 'nope'"):
        main(["--train", f"{synth}/manifest.jsonl:nope", "--test", str(synth),
              "--out", str(tmp_path / "x")])  # fmt: skip
    with pytest.raises(SystemExit, match="give --package too"):
        main(["--train", str(synth), "--test", str(synth), "--val", str(synth),
              "--out", str(tmp_path / "x")])  # fmt: skip
    with pytest.raises(SystemExit, match=r"--load .*: no such file"):
        main(["--train", str(synth), "--test", str(synth), "--load", str(tmp_path / "no.pt"),
              "--out", str(tmp_path / "x")])  # fmt: skip


def test_fuse_takes_each_class_from_the_scorer_that_ranks_it_better() -> None:
    y = np.array([[1, 0], [0, 1], [0, 0], [1, 1]], bool)
    good_a = np.array([[0.9, 0.1], [0.1, 0.2], [0.2, 0.3], [0.8, 0.1]])  # class 0 only
    good_b = np.array([[0.2, 0.1], [0.9, 0.8], [0.3, 0.1], [0.1, 0.9]])  # class 1 only
    assert fuse({"package": good_a, "probe": good_b}, y, ["x", "z"]) == {
        "x": "package", "z": "probe",
    }  # fmt: skip
    # A tie keeps the package.
    assert fuse({"package": good_a, "probe": good_a}, y, ["x", "z"])["z"] == "package"


def test_operating_point_of_a_perfect_scorer() -> None:
    y = np.array([[1, 0], [0, 1], [0, 0], [0, 0]], bool)
    p = np.where(y, 0.9, 0.1)
    pt = operating_point(p, y, p, y, ["x", "z"])
    assert pt["macro_f1"] == 1.0 and pt["recall"] == 1.0 and pt["false_hold"] == 0.0
    # A test set whose good photos score like defects is held.
    p_test = p.copy()
    p_test[2:, 0] = 0.95
    assert operating_point(p, y, p_test, y, ["x", "z"])["false_hold"] == 1.0


def test_table_has_one_row_per_class() -> None:
    row = {"positives": 3, "auroc": 0.9, "within_design_auroc": 0.8, "ap": 0.5}
    md = table({"probe": {"scratch": row, "bent": row}}, ["scratch", "bent"])
    assert md.splitlines()[2] == "| scratch | 3 | 0.900 | 0.800 | 0.500 |"
    assert len(md.splitlines()) == 4
