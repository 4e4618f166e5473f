"""training.surface_probe: native-resolution crops, per-cell targets and a whole probe run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qc_model.catalog import default_catalog_dir
from qc_model.taxonomy import VISUAL_DEFECTS
from training.surface_probe import main, operating_point, table
from training.synth.generate import SynthOptions, generate_dataset

BUNDLED = Path(__file__).parents[2] / "models" / "default"


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("probe") / "d"
    opts = SynthOptions(count=12, size=512, defect_rate=0.6, difficulty=0.3, seed=7)
    generate_dataset(default_catalog_dir(), root, opts, workers=1)
    return root


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
        "--package", str(BUNDLED), "--load", str(out / "surface.pt"), "--out", str(again),
        "--workers", "1",
    ])  # fmt: skip
    report = json.loads((again / "results.json").read_text())
    assert report["train"]["photos"] == 0 and report["timing"] == {}
    assert set(report["operating_points"]) == {"probe", "package", "fused"}
    assert set(report["fusion"]) <= set(VISUAL_DEFECTS)
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
    with pytest.raises(SystemExit, match=r"no.pt: no such surface checkpoint"):
        main(["--train", str(synth), "--test", str(synth), "--load", str(tmp_path / "no.pt"),
              "--out", str(tmp_path / "x")])  # fmt: skip


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
