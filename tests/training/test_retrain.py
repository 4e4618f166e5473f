"""Retraining, training side: merging reviewed labels, the challenger's config, the report."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from qc_model.errors import DataError
from qc_model.manifest import Header, Manifest, Record
from qc_model.package import ClassThreshold, PackageMeta
from qc_model.preprocess import PreprocessConfig
from qc_model.promotion import Scores, promotion_gate
from training.compare import Comparison, PackageScores, PhotoSet
from training.compare_report import flipped, write_comparison_report
from training.retrain import CPU_FREEZE_BLOCKS, RetrainPlan, combine, retrain_config


def _set(root: Path, name: str, items: list[tuple[bytes, list[str], str]]) -> Path:
    (root / "images").mkdir(parents=True, exist_ok=True)
    records = []
    for i, (data, labels, split) in enumerate(items):
        sha = hashlib.sha256(data).hexdigest()
        (root / "images" / f"{sha}.png").write_bytes(data)
        records.append(
            Record(
                id=f"{name}{i}",
                image=f"images/{sha}.png",
                sha256=sha,
                width=4,
                height=4,
                piece_id=f"{name}-p{i}",
                labels=labels,
                split=split,  # type: ignore[arg-type]
                source="reviewed" if name == "rev" else "synthetic",
            )
        )
    Manifest(header=Header(name=name), records=records).write(root / "manifest.jsonl")
    return root


def test_combine_lets_qc_labels_win_and_keeps_the_reviewed_test_split(tmp_path: Path) -> None:
    base = _set(
        tmp_path / "base",
        "b",
        [(b"one", [], "train"), (b"two", ["scratch"], "val"), (b"four", [], "test")],
    )
    # QC saw photo "one" again and found tarnish: its label replaces the base record.
    rev = _set(
        tmp_path / "rev", "rev", [(b"one", ["tarnish"], "train"), (b"three", ["bent"], "test")]
    )
    merged, relabelled = combine(base, rev, tmp_path / "out")
    assert relabelled == 1
    by_id = {r.id: r for r in merged.records}
    assert set(by_id) == {"b1", "b2", "rev0", "rev1"}
    # The base's test split has no judge's role (the frozen holdout has): it validates.
    assert by_id["b2"].split == "val"
    assert by_id["rev0"].labels == ["tarnish"] and by_id["rev0"].image.startswith("reviewed/")
    assert by_id["b1"].image.startswith("base/") and by_id["rev1"].split == "test"
    assert (tmp_path / "out" / by_id["rev0"].image).read_bytes() == b"one"  # linked, not copied
    again = Manifest.read(tmp_path / "out")
    assert again.header.recipe["relabelled"] == 1
    assert again.header.recipe["reviewed"]["version"] == Manifest.read(rev).header.version


def test_combine_refuses_data_of_another_taxonomy_or_classes(tmp_path: Path) -> None:
    base = _set(tmp_path / "base", "b", [(b"one", [], "train")])
    other = tmp_path / "other"
    _set(other, "o", [(b"x", [], "train")])
    m = Manifest.read(other)
    header = m.header.model_copy(update={"classes": ["scratch"], "version": ""})
    Manifest(header=header, records=m.records).write(other / "manifest.jsonl")
    with pytest.raises(DataError, match="differ from the base data"):
        combine(base, other, tmp_path / "out")


def _meta(config: dict) -> PackageMeta:
    th = ClassThreshold(threshold=0.5, review_low=0.4, review_high=0.8)
    return PackageMeta(
        name="m",
        version="1",
        taxonomy_version="1",
        task="multilabel",
        classes=["scratch"],
        preprocess=PreprocessConfig(input_size=32),
        heatmap_size=(2, 2),
        temperature=1.0,
        thresholds={"scratch": th},
        training={"config": config},
        onnx_sha256="0" * 64,
    )


def test_challenger_config_starts_from_the_champion(tmp_path: Path) -> None:
    from training.config import load_config

    gpu = {"freeze_blocks": 0, "epochs": 20, "lr": 0.0006, "cache_dir": "/gpu-host/cache"}
    ckpt = tmp_path / "champion.pt"
    plan = RetrainPlan(tmp_path, ckpt, tmp_path, tmp_path, tmp_path, tmp_path)
    notes = retrain_config(_meta(gpu), plan, tmp_path / "c.yaml")
    cfg = load_config(tmp_path / "c.yaml")
    assert cfg.freeze_blocks == CPU_FREEZE_BLOCKS and cfg.epochs == 20 and cfg.lr == 0.0006
    assert cfg.weights == str(ckpt) and cfg.cache_dir == ""
    assert notes == [
        "freeze_blocks 0 -> 6: frozen, cached trunk",
        "fine-tuning from the champion's weights",
    ]
    # No stored checkpoint and a graph that does not give its weights back (here: no package at
    # all): ImageNet, and the run says why.
    plan = RetrainPlan(tmp_path, None, tmp_path, tmp_path, tmp_path, tmp_path)
    notes = retrain_config(_meta({"freeze_blocks": 6}), plan, tmp_path / "d.yaml")
    assert load_config(tmp_path / "d.yaml").weights == "imagenet"
    assert len(notes) == 1
    assert notes[0].startswith("training from ImageNet weights (the champion has no checkpoint: ")


def test_a_champion_config_with_removed_settings_retrains_or_is_refused(tmp_path: Path) -> None:
    import warnings

    from training.config import TrainConfig, load_config

    plan = RetrainPlan(tmp_path, tmp_path / "c.pt", tmp_path, tmp_path, tmp_path, tmp_path)
    old = {"freeze_blocks": 6, "pool": "avg", "pool_r": 4.0, "cam_loss": 0.0}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # written by an older version, not chosen: no warning
        notes = retrain_config(_meta(old), plan, tmp_path / "c.yaml")
        cfg = load_config(tmp_path / "c.yaml")
    assert notes[0] == "settings that were removed left out: cam_loss, pool, pool_r"
    assert cfg == TrainConfig(freeze_blocks=6, weights=str(tmp_path / "c.pt"))
    with pytest.raises(DataError, match="training config: setting 'pool: lse' was removed"):
        retrain_config(_meta({**old, "pool": "lse"}), plan, tmp_path / "d.yaml")


def _scores(version: str, probs: np.ndarray, targets: np.ndarray) -> PackageScores:
    held = (probs >= 0.5).any(axis=1)
    per_class = []
    for k, name in enumerate(["scratch", "tarnish"]):
        p, y = probs[:, k] >= 0.5, targets[:, k] == 1
        tp, fp, fn = int((p & y).sum()), int((p & ~y).sum()), int((~p & y).sum())
        f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
        tn = int((~p & ~y).sum())
        per_class.append(
            {"name": name, "support": int(y.sum()), "f1": f1, "recall": tp / max(tp + fn, 1),
             "confusion": ((tn, fp), (fn, tp))}
        )  # fmt: skip
    truth = targets.any(axis=1)
    s = Scores(
        len(probs), float(np.mean([r["f1"] for r in per_class])), 1.0, float((held == truth).mean())
    )
    return PackageScores(version, probs, [0.5, 0.5], held, per_class, {}, s)


def test_report_shows_gate_deltas_confusions_and_flipped_photos(tmp_path: Path) -> None:
    import cv2

    records, root = [], tmp_path / "photos"
    root.mkdir()
    for i in range(4):
        cv2.imwrite(str(root / f"{i}.png"), np.full((40, 60, 3), 60 * i, np.uint8))
        records.append(
            Record(id=f"r{i}", image=f"{i}.png", sha256="0" * 64, width=60, height=40,
                   piece_id=f"p{i}", source="synthetic")
        )  # fmt: skip
    targets = np.array([[0, 0], [1, 0], [0, 1], [0, 1]])
    champ = _scores("m@1", np.array([[0.1, 0.1], [0.9, 0.1], [0.1, 0.2], [0.2, 0.1]]), targets)
    chal = _scores("m@2", np.array([[0.1, 0.1], [0.9, 0.1], [0.1, 0.8], [0.1, 0.9]]), targets)
    sets = {
        name: PhotoSet(name, root, records, targets, champ, chal)
        for name in ("holdout", "reviewed")
    }
    gate = promotion_gate(champ.scores, chal.scores, champ.scores, chal.scores)
    c = Comparison("m@1", "m@2", ["scratch", "tarnish"], sets, gate)
    assert gate.passed and len(flipped(c)) == 4  # photos 2 and 3 flip, in both sets
    page = write_comparison_report(c, tmp_path / "report").read_text()
    for png in ("f1_deltas.png", "confusion.png", "flipped.png"):
        assert (tmp_path / "report" / png).stat().st_size > 1000
    assert page.count("data:image/png;base64") == 3 and "passed" in page
    metrics = c.metrics()
    assert (
        metrics["gate"]["passed"] is True and metrics["holdout"]["challenger"]["version"] == "m@2"
    )


def test_champion_without_a_config_gets_the_recipe_of_the_data(tmp_path: Path) -> None:
    """Like kito train without --config: grey photos without the mat are used whole."""
    import hashlib

    import cv2

    from qc_model.manifest import Header, Manifest, Record
    from training.config import load_config

    rng = np.random.default_rng(0)
    records = []
    for i in range(4):
        name = f"p{i}.png"
        cv2.imwrite(str(tmp_path / name), rng.integers(0, 255, (256, 256), np.uint8))
        sha = hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()
        records.append(
            Record(id=name, image=name, sha256=sha, width=256, height=256, piece_id=name,
                   labels=["good" if i % 2 else "bad"], source="imported", split="train")
        )  # fmt: skip
    header = Header(name="t", task="single_label", classes=["bad", "good"])
    Manifest(header=header, records=records).write(tmp_path / "manifest.jsonl")
    plan = RetrainPlan(tmp_path, tmp_path / "champion.pt", tmp_path, tmp_path, tmp_path, tmp_path)
    notes = retrain_config(_meta({}), plan, tmp_path / "c.yaml", tmp_path / "manifest.jsonl")
    cfg = load_config(tmp_path / "c.yaml")
    assert cfg.preprocess.crop == "none" and cfg.preprocess.input_size == 256
    assert cfg.augment.colour == 0 and cfg.weights == str(tmp_path / "champion.pt")
    assert cfg.freeze_blocks == 0  # four photos: the whole network learns, as kito train would
    assert notes[0].startswith("the champion carries no training config: recipe train_photo_grey")
    assert (
        notes[1] == "freeze_blocks 0 kept: 4 photos x 15 epochs = 47 passes at 288 px, "
        "within the CPU budget of 30,000"
    )


@pytest.mark.parametrize(("photos", "kept"), [(1500, True), (2500, False)])
def test_a_whole_photo_champion_keeps_full_fine_tuning_while_the_data_fits_the_cpu(
    tmp_path: Path, photos: int, kept: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A grey-photo champion fine-tuned end to end: its retrain does the same on a CPU while
    photos x epochs fits the budget (training.recipe), else stages 4-6 on cached features."""
    import torch

    from training.config import load_config

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    records = [
        Record(id=f"p{i}", image=f"p{i}.png", sha256=f"{i:064x}", width=300, height=300,
               piece_id=f"p{i}", labels=["good"], source="imported",
               split="train" if i < photos else "val")
        for i in range(photos + 50)
    ]  # fmt: skip
    header = Header(name="t", task="single_label", classes=["bad", "good"])
    Manifest(header=header, records=records).write(tmp_path / "manifest.jsonl")
    champion = {"freeze_blocks": 0, "epochs": 15, "preprocess": {"crop": "none", "input_size": 288}}
    plan = RetrainPlan(tmp_path, tmp_path / "champion.pt", tmp_path, tmp_path, tmp_path, tmp_path)
    notes = retrain_config(_meta(champion), plan, tmp_path / "c.yaml", tmp_path / "manifest.jsonl")
    cfg = load_config(tmp_path / "c.yaml")
    passes = f"{photos} photos x 15 epochs = {photos * 15:,} passes at 288 px"
    if kept:
        assert (cfg.freeze_blocks, cfg.epochs) == (0, 15)
        assert notes[0] == f"freeze_blocks 0 kept: {passes}, within the CPU budget of 30,000"
    else:
        assert (cfg.freeze_blocks, cfg.epochs) == (4, 10)
        assert notes[0] == (f"{passes}, over the CPU budget of 30,000: freeze_blocks=4, "
                            "epochs=10 (cached trunk)")  # fmt: skip
