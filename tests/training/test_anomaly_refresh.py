"""The anomaly model's banks in a projection, its review level chosen for a target recall, and
its banks refreshed by `kito anomaly update` and `kito retrain` (tiny extractor, seconds)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from anomaly_data import fitted_model, record, write_photos
from tiny_package import build_tiny_package

from qc_model.anomaly import ANOMALY_BANKS, AnomalyError, AnomalyModel, projection_key
from qc_model.anomaly_search import pca_projection
from qc_model.errors import DataError
from qc_model.manifest import Header, Manifest
from qc_model.package import load_package
from training.anomaly.evaluate import anomaly_levels, anomaly_metrics
from training.anomaly.fit import FitOptions
from training.anomaly.package import attach, staged
from training.anomaly.thresholds import choose_review, level_for_recall


def test_pca_projection_keeps_the_direction_the_rows_spread_along() -> None:
    rng = np.random.default_rng(0)
    x = np.zeros((200, 5), np.float32)
    x[:, 3] = rng.normal(0, 10, 200)  # the spread is along axis 3
    x[:, 1] = rng.normal(0, 0.1, 200)
    p = pca_projection(x, 1)
    assert p.shape == (5, 1) and abs(float(p[3, 0])) == pytest.approx(1.0, abs=1e-3)
    assert pca_projection(x, 8).shape == (5, 5)  # more than D: the identity
    q = pca_projection(rng.normal(size=(50, 6)).astype(np.float32), 4)
    assert np.allclose(q.T @ q, np.eye(4), atol=1e-5)


def test_a_bank_in_a_projection_is_stored_smaller_and_scores_alike(tmp_path: Path) -> None:
    full, data, records = fitted_model(tmp_path / "full")
    small, _, _ = fitted_model(tmp_path / "small", proj_dim=2)
    with np.load(small / ANOMALY_BANKS) as npz:
        assert npz["design:A"].shape == (32, 2)
        assert npz[projection_key("design:A")].shape == (3, 2)
    test = [r for r in records if r.split == "test"]
    for folder in (full, small):
        model = AnomalyModel(folder, threads=1)
        levels, banks = anomaly_levels(model, test, data)
        m = anomaly_metrics(test, levels, banks, model.meta.review_level)
        assert m["overall"]["auroc"] == pytest.approx(1.0)
    # a projection that does not fit the features is refused with the file named
    with np.load(small / ANOMALY_BANKS) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays[projection_key("design:A")] = np.zeros((4, 2), np.float32)
    np.savez(small / ANOMALY_BANKS, **arrays)
    meta = json.loads((small / "anomaly.json").read_text())
    from qc_model.manifest import sha256_file

    meta["banks_sha256"] = sha256_file(small / ANOMALY_BANKS)
    (small / "anomaly.json").write_text(json.dumps(meta))
    with pytest.raises(AnomalyError, match=r"anomaly_banks\.npz: projection of 'design:A'"):
        AnomalyModel(small, threads=1)


@pytest.mark.parametrize(
    ("levels", "target", "want"),
    [
        ([0.9, 0.8, 0.7, 0.6], 0.5, 0.8),  # exactly half at 0.8
        ([0.9, 0.8, 0.7, 0.6], 0.51, 0.7),  # a little more than half: one more photo
        ([0.9, 0.8, 0.7, 0.6], 1.0, 0.6),
        ([0.5, 0.5, 0.5], 0.7, 0.5),  # all equal
    ],
)
def test_level_for_recall(levels: list[float], target: float, want: float) -> None:
    lv = np.array([*levels, 0.99, 0.1])  # two good photos, ignored
    bad = np.array([True] * len(levels) + [False, False])
    t = level_for_recall(lv, bad, target)
    assert t == pytest.approx(want)
    assert (lv[bad] >= t).mean() >= target


def test_level_for_recall_needs_defective_photos() -> None:
    with pytest.raises(DataError, match="no defective photos"):
        level_for_recall(np.array([0.5]), np.array([False]), 0.9)


def test_thresholds_choose_the_review_level_for_a_recall(tmp_path: Path) -> None:
    model, data, _ = fitted_model(tmp_path)
    out = tmp_path / "chosen"
    manifest = data / "manifest.jsonl"
    meta = choose_review(model, manifest, out, 1.0, split="test", judged_only=False)
    r = meta.review
    assert r is not None and r.defective == 5 and r.good == 5 and r.recall == 1.0
    reloaded = AnomalyModel(out, threads=1).meta
    assert reloaded.review_level == pytest.approx(r.level) and r.level != 1 - meta.false_hold
    with pytest.raises(DataError, match="needs good and defective photos"):
        choose_review(model, manifest, tmp_path / "x", 0.9, split="val", judged_only=False)
    assert not (tmp_path / "x").exists()
    # in place: the folder is replaced once the new one is complete, nothing else is left
    before = set(tmp_path.iterdir())
    choose_review(model, manifest, model, 1.0, split="test", judged_only=False)
    assert AnomalyModel(model, threads=1).meta.review == r
    assert set(tmp_path.iterdir()) == before


def test_kito_anomaly_thresholds_command(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from kito.cli import app

    model, data, _ = fitted_model(tmp_path)
    args = ["anomaly", "thresholds", "--package", str(model), "--manifest", str(data)]
    ok = CliRunner().invoke(
        app, [*args, "--out", str(tmp_path / "o"), "--split", "test", "--all-photos"]
    )
    assert ok.exit_code == 0, ok.output
    assert "review level" in ok.output and "recall 1.000" in ok.output
    bad = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "b"), "--all-photos"])
    assert bad.exit_code == 2 and "needs good and defective photos" in bad.output


def _accepted(tmp_path: Path, design: str = "A") -> Path:
    new = tmp_path / "accepted"
    records = [record(200 + i, design, "train") for i in range(10)]
    records.append(record(300, design, "train", ["scratch"]))  # rejected: not learnt
    write_photos(new, records, seed=5)
    Manifest(header=Header(name="new"), records=records).write(new / "manifest.jsonl")
    return new / "manifest.jsonl"


def test_update_keeps_a_bank_in_its_projection(tmp_path: Path) -> None:
    from training.anomaly.update import update_designs

    model, _, _ = fitted_model(tmp_path, proj_dim=2)
    out = tmp_path / "updated"
    meta, added = update_designs(model, _accepted(tmp_path), None, out, FitOptions(bank_size=40))
    assert added == {"A": 8} and meta.designs["A"].patches == 40
    refreshed = AnomalyModel(out, threads=1)
    assert refreshed.banks["design:A"].shape == (40, 2)
    old = AnomalyModel(model, threads=1).projections["design:A"]
    assert np.array_equal(refreshed.projections["design:A"], old)


def _package_with_anomaly(tmp_path: Path) -> Path:
    base = build_tiny_package(tmp_path / "base")
    model, _, _ = fitted_model(tmp_path)
    pkg = tmp_path / "champion"
    with staged(pkg, base) as tmp:
        for f in model.iterdir():
            (tmp / f.name).write_bytes(f.read_bytes())
        attach(tmp, AnomalyModel(tmp, threads=1).meta)
    return pkg


def test_retrain_carries_the_anomaly_model_and_refreshes_its_banks(tmp_path: Path) -> None:
    from training.retrain import RetrainPlan, _carry_anomaly

    champion = _package_with_anomaly(tmp_path)
    challenger = build_tiny_package(tmp_path / "run" / "challenger")
    assert load_package(challenger, threads=1).anomaly is None
    plan = RetrainPlan(
        champion=champion, champion_checkpoint=None, base=tmp_path, holdout_root=tmp_path,
        reviewed=_accepted(tmp_path), out=tmp_path / "run",
    )  # fmt: skip
    note = _carry_anomaly(plan, challenger, lambda _: None)
    assert note.endswith("A (+8)")
    pkg = load_package(challenger, threads=1)
    assert pkg.anomaly is not None and pkg.anomaly.covers("A")
    before = AnomalyModel(champion, threads=1).meta.designs["A"].photos
    assert pkg.anomaly.meta.designs["A"].photos == before + 8
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.startswith(".")]  # no leftovers


def test_retrain_carries_the_model_unchanged_without_accepted_photos(tmp_path: Path) -> None:
    from training.retrain import RetrainPlan, _carry_anomaly

    champion = _package_with_anomaly(tmp_path)
    challenger = build_tiny_package(tmp_path / "run" / "challenger")
    plan = RetrainPlan(
        champion=champion, champion_checkpoint=None, base=tmp_path, holdout_root=tmp_path,
        reviewed=_accepted(tmp_path, design="Z"), out=tmp_path / "run",
    )  # fmt: skip
    assert "unchanged" in _carry_anomaly(plan, challenger, lambda _: None)
    pkg = load_package(challenger, threads=1)
    assert pkg.anomaly is not None
    assert pkg.anomaly.meta.designs == AnomalyModel(champion, threads=1).meta.designs
