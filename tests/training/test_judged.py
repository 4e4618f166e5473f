"""training.judged: the photos the service would judge, `kito eval --package` on them, and
`kito thresholds` (training.thresholds) choosing thresholds on them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from judged_data import write_mixed
from tiny_package import build_tiny_package

from qc_model.gate import check_photo
from qc_model.inference import read_image
from qc_model.manifest import Manifest
from training.judged import gate_passed


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 clean 1024 px photos and 4 defocused ones, every photo in val and in test."""
    return write_mixed(tmp_path_factory.mktemp("judged"))


def test_the_gate_flags_are_the_gates_own_verdicts(mixed: Path) -> None:
    val = Manifest.read(mixed / "manifest.jsonl").split("val")
    flags = gate_passed(val, mixed)
    alone = [check_photo(read_image(mixed / r.image)).passed for r in val[:3]]
    assert list(flags[:3]) == alone  # the design only tightens px/mm; a cuff's limits are loose
    clean = flags[[r.image.startswith("clean/") for r in val]]
    blurred = flags[[r.image.startswith("blurred/") for r in val]]
    assert clean.mean() >= 0.75 and not blurred.any()
    assert np.array_equal(gate_passed(val, mixed, workers=2), flags)


def test_eval_reports_the_judged_photos_beside_all(mixed: Path, tmp_path: Path) -> None:
    from training.evaluate import evaluate_package

    pkg = build_tiny_package(tmp_path / "tiny")
    m = evaluate_package(pkg, mixed / "manifest.jsonl", tmp_path / "eval").metrics
    test = Manifest.read(mixed / "manifest.jsonl").split("test")
    passed = gate_passed(test, mixed)
    j = m["judged"]
    assert m["scores"]["photos"] == 6 and j["scores"]["photos"] == int(passed.sum())
    assert j["retake_share"] == pytest.approx(1 - passed.mean())
    html = (tmp_path / "eval" / "index.html").read_text()
    assert "Per class, photos the gate passes" in html


def test_thresholds_are_chosen_again_on_the_judged_val_photos(mixed: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from kito.cli import app
    from qc_model.inference import Inferencer
    from qc_model.package import read_meta
    from training.calibrate import choose_thresholds
    from training.evaluate import package_probs
    from training.thresholds import rethreshold

    pkg = build_tiny_package(tmp_path / "tiny")
    manifest = mixed / "manifest.jsonl"
    out = tmp_path / "re" / "tiny"
    meta = rethreshold(pkg, manifest, out)
    val = Manifest.read(manifest).split("val")
    passed = gate_passed(val, mixed)
    assert 0 < passed.sum() < len(val)  # the blurred photos are left out
    assert meta.metrics["val"]["photos"] == int(passed.sum()) and meta.metrics["val"]["judged_only"]
    assert meta.dataset_versions["thresholds"] == Manifest.read(manifest).header.version
    old = read_meta(pkg)
    assert meta.dataset_versions.get("calibration") == old.dataset_versions.get("calibration")
    classes = list(old.classes)
    judged = [r for r, ok in zip(val, passed, strict=True) if ok]
    probs = package_probs(pkg, judged, mixed, classes, "val")
    y = np.array([[c in r.labels for c in classes] for r in judged])
    want = choose_thresholds(probs, y, classes, target_recall=0.97).thresholds
    assert {c: t.threshold for c, t in meta.thresholds.items()} == {
        c: want[c].threshold for c in classes
    }
    # The networks are the package's own: the same scores, another version.
    photos = [mixed / r.image for r in val[:3]]
    for a, b in zip(Inferencer(pkg).predict(photos), Inferencer(out).predict(photos), strict=True):
        assert a.probs == b.probs
    assert meta.version != old.version and meta.onnx_sha256 != old.onnx_sha256
    # All photos, through the command; then what it refuses.
    runner = CliRunner()
    args = ["thresholds", "--package", str(pkg), "--calibration-manifest", str(manifest)]
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "all"), "--all-photos"])
    assert res.exit_code == 0, res.output
    assert f"on {len(val)} val photos: macro-F1" in res.output
    res = runner.invoke(app, [*args, "--out", str(out)])
    assert res.exit_code != 0 and "already exists" in res.output
    blurred = [r for r in val if r.image.startswith("blurred/")]
    Manifest(header=Manifest.read(manifest).header, records=blurred).write(mixed / "blur.jsonl")
    bad = ["thresholds", "--package", str(pkg), "--calibration-manifest", str(mixed / "blur.jsonl")]
    res = runner.invoke(app, [*bad, "--out", str(tmp_path / "none")])
    assert res.exit_code != 0 and "passes none of the 2 val photos" in res.output
    assert not (tmp_path / "none").exists() and not list((tmp_path / "re").glob(".*tmp-*"))
