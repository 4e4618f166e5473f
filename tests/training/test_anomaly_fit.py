"""training.anomaly: coreset, fitting banks per design and family, metrics, packaging.

The extractor here is the tiny 8 x 8 average pool (tests/shared/tiny_anomaly.py), so the
fitting logic is tested in seconds; the real Lite0 extractor has its own slow test."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tiny_anomaly as tiny
from anomaly_data import fitted_model, record, write_photos
from tiny_package import build_tiny_package

from qc_model.anomaly import ANOMALY_META, ANOMALY_ONNX, AnomalyError, AnomalyModel
from qc_model.errors import DataError
from qc_model.manifest import Header, Manifest
from qc_model.package import PackageError, load_package, read_meta
from training.anomaly.coreset import kcenter_coreset
from training.anomaly.evaluate import anomaly_metrics
from training.anomaly.fit import Extractor, FitOptions, fit_banks, split_photos
from training.anomaly.package import attach, staged


def test_kcenter_keeps_one_patch_of_every_cluster_however_small() -> None:
    rng = np.random.default_rng(0)
    big = rng.normal(0, 0.01, (500, 8))
    rare = rng.normal(5, 0.01, (3, 8))  # a clasp: three patches among hundreds of plain metal
    other = rng.normal(-5, 0.01, (40, 8))
    x = np.concatenate([big, rare, other]).astype(np.float32)
    chosen = kcenter_coreset(x, 3, proj_dim=4, seed=1)
    assert len(set(chosen.tolist())) == 3
    assert {int(i >= 500) + int(i >= 503) for i in chosen} == {0, 1, 2}


def test_kcenter_returns_everything_when_the_pool_is_small() -> None:
    x = np.zeros((5, 3), np.float32)
    assert kcenter_coreset(x, 8).tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError):
        kcenter_coreset(x, 0)


def test_split_photos_holds_out_every_fifth_when_val_is_too_small() -> None:
    records = [record(i, "A", "train") for i in range(20)]
    bank, held = split_photos(records, ("train",), "val", FitOptions(min_photos=10))
    assert len(held) == 4 and len(bank) == 16
    assert not {r.id for r in held} & {r.id for r in bank}
    few = records[:8]
    bank, held = split_photos(few, ("train",), "val", FitOptions(min_photos=10))
    assert held == [] and len(bank) == 8  # too few to hold any out: the design falls back


def test_fit_banks_per_design_and_a_family_for_the_design_with_too_few(tmp_path: Path) -> None:
    tiny.write_pool_extractor(tmp_path / ANOMALY_ONNX)
    records = [record(i, "A", "train" if i < 14 else "val") for i in range(18)]
    records += [record(100 + i, "B", "train" if i < 3 else "val") for i in range(4)]
    write_photos(tmp_path, records)
    opts = FitOptions(bank_size=32, pool_size=400, min_photos=10, min_calibration=3)
    ex = Extractor(tmp_path / ANOMALY_ONNX, tmp_path, opts.config)
    families = {"A": "ring/silver", "B": "ring/silver", "C": "ring/silver"}
    designs, fams, family_of = fit_banks(ex, records, opts, families=families)
    assert set(designs) == {"A"} and set(fams) == {"ring/silver"}
    assert family_of == {"B": "ring/silver", "C": "ring/silver"}
    a = designs["A"]
    assert a.meta.photos == 14 and a.meta.calibration_photos == 4 and len(a.bank) == 32
    assert a.meta.px_per_mm is None  # no mat in these photos: used whole


def test_a_fitted_model_holds_the_blotched_photos_and_passes_the_clean(tmp_path: Path) -> None:
    out, data, records = fitted_model(tmp_path)
    from training.anomaly.evaluate import anomaly_levels

    model = AnomalyModel(out, threads=1)
    test = [r for r in records if r.split == "test"]
    levels, banks = anomaly_levels(model, test, data)
    m = anomaly_metrics(test, levels, banks, model.meta.review_level, np.zeros(len(test), bool))
    assert m["overall"]["auroc"] == pytest.approx(1.0)
    assert m["overall"]["recall"] == pytest.approx(1.0)
    assert m["fused"]["classifier"]["recall"] == 0.0 and m["fused"]["fused"]["recall"] == 1.0
    assert [row["group"] for row in m["by_class"]] == ["scratch"]


def test_anomaly_metrics_leave_out_photos_no_bank_covers() -> None:
    recs = [record(i, "A", "test", ["scratch"] if i < 2 else []) for i in range(5)]
    levels = np.array([0.99, np.nan, 0.1, 0.2, 0.995])
    m = anomaly_metrics(recs, levels, ["design:A", None, "design:A", "design:A", "design:A"], 0.98)
    assert m["covered"] == 4 and m["photos"] == 5
    assert m["overall"]["auroc"] == pytest.approx(2 / 3)
    assert m["overall"]["recall"] == 1.0 and m["overall"]["false_hold_rate"] == pytest.approx(1 / 3)


def test_attach_adds_the_model_to_a_package_and_old_packages_still_load(tmp_path: Path) -> None:
    base = build_tiny_package(tmp_path / "base")
    assert "anomaly" not in json.loads((base / "package.json").read_text())
    assert load_package(base, threads=1).anomaly is None
    model, _, _ = fitted_model(tmp_path)
    out = tmp_path / "with-anomaly"
    with staged(out, base) as tmp:
        for f in model.iterdir():
            (tmp / f.name).write_bytes(f.read_bytes())
        attach(tmp, AnomalyModel(tmp, threads=1).meta)
    pkg = load_package(out, threads=1)
    assert pkg.anomaly is not None and pkg.anomaly.covers("A")
    assert read_meta(out).anomaly is not None and read_meta(out).anomaly.designs == ["A"]
    # anomaly.json replaced after attaching: the package refuses it
    (out / ANOMALY_META).write_text((out / ANOMALY_META).read_text() + " ")
    with pytest.raises(PackageError, match="checksum"):
        load_package(out, threads=1)


def test_staged_leaves_nothing_when_the_model_does_not_load(tmp_path: Path) -> None:
    out = tmp_path / "model"
    with pytest.raises(AnomalyError, match=r"anomaly\.json"), staged(out, None) as tmp:
        (tmp / "junk.txt").write_text("x")
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_update_adds_new_good_photos_to_a_design_bank(tmp_path: Path) -> None:
    from training.anomaly.update import update_design

    model, _, _ = fitted_model(tmp_path)
    new = tmp_path / "accepted"
    records = [record(200 + i, "A", "train") for i in range(10)]
    write_photos(new, records, seed=5)
    Manifest(header=Header(name="new"), records=records).write(new / "manifest.jsonl")
    out = tmp_path / "updated"
    meta = update_design(model, new / "manifest.jsonl", "A", out, FitOptions(bank_size=32))
    before = AnomalyModel(model, threads=1).meta.designs["A"]
    assert meta.designs["A"].photos == before.photos + 8  # 2 of the 10 held out to calibrate
    assert AnomalyModel(out, threads=1).meta.training["updates"] == [{"design": "A", "photos": 8}]
    with pytest.raises(DataError, match="no bank of its own for design 'Z'"):
        update_design(model, new / "manifest.jsonl", "Z", tmp_path / "z")


def test_kito_eval_reports_an_anomaly_only_model(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from kito.cli import app

    model, data, _ = fitted_model(tmp_path)
    out = tmp_path / "report"
    args = ["eval", "--package", str(model), "--manifest", str(data / "manifest.jsonl")]
    result = CliRunner().invoke(app, [*args, "--split", "test", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "AUROC 1.000" in result.output
    a = json.loads((out / "metrics.json").read_text())["anomaly"]
    assert a["covered"] == 10 and a["by_design"][0]["group"] == "A"
    assert "anomaly_roc.png" in (out / "index.html").read_text()
    bad = CliRunner().invoke(app, [*args, "--split", "nope", "--out", str(tmp_path / "r2")])
    assert bad.exit_code == 2 and "no photos in split 'nope'" in bad.output


def test_evaluate_package_adds_anomaly_and_fused_numbers(tmp_path: Path) -> None:
    from training.evaluate import evaluate_package

    base = build_tiny_package(tmp_path / "base")
    model, data, _ = fitted_model(tmp_path)
    pkg = tmp_path / "pkg"
    with staged(pkg, base) as tmp:
        for f in model.iterdir():
            (tmp / f.name).write_bytes(f.read_bytes())
        attach(tmp, AnomalyModel(tmp, threads=1).meta)
    m = evaluate_package(pkg, data / "manifest.jsonl", tmp_path / "r", split="test").metrics
    a = m["anomaly"]
    assert a["overall"]["auroc"] == pytest.approx(1.0)
    assert set(a["fused"]) == {"classifier", "anomaly", "fused"}
    # held if either holds: the fused recall is at least each one's
    assert a["fused"]["fused"]["recall"] >= a["fused"]["classifier"]["recall"]
    assert a["fused"]["fused"]["recall"] >= a["fused"]["anomaly"]["recall"]
    with np.load(tmp_path / "r" / "anomaly_scores.npz") as npz:  # per photo, for studies
        assert len(npz["levels"]) == len(npz["ids"]) == 10 and npz["probs"].shape[0] == 10
    # the gate refuses these mat-less photos: no judged numbers, rather than empty ones
    assert "judged" not in a


@pytest.mark.slow
def test_the_lite0_extractor_exports_with_dynamic_size_and_matches_torch(tmp_path: Path) -> None:
    from training.anomaly.features import PatchFeatures, check_parity, export_extractor

    module = PatchFeatures((2, 4))
    assert module.dims() == (40 + 112, 8)
    export_extractor(module, tmp_path / ANOMALY_ONNX)  # raises when ONNX and torch differ
    assert check_parity(module, tmp_path / ANOMALY_ONNX, seed=1) < 1e-3
    with pytest.raises(AnomalyError, match="stages"):
        PatchFeatures((4, 2))


def test_kito_anomaly_fit_without_good_photos_is_a_one_line_error(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from kito.cli import app

    records = [record(i, "A", "train", ["scratch"]) for i in range(3)]
    Manifest(header=Header(name="bad"), records=records).write(tmp_path / "manifest.jsonl")
    args = ["anomaly", "fit", "--manifest", str(tmp_path / "manifest.jsonl")]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "no good photos to learn from" in result.output
    assert not (tmp_path / "out").exists()
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "o"), "--designs", "Z"])
    assert result.exit_code == 2 and "no good photos of design(s) Z" in result.output
