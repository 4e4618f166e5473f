"""Tests for `kito train` (training.train) on tiny drawn data: learning, resume, errors, DDP."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from qc_model.errors import DataError
from qc_model.manifest import Header, Manifest, Record
from qc_model.mat import DEFAULT_MAT
from qc_model.taxonomy import DEFECT_LABELS, VISUAL_DEFECTS
from training.checkpoint_io import load_trained
from training.config import load_config
from training.predict import predict_manifest
from training.train import get_args_parser, main

FAST = ["preprocess.input_size=64", "epochs=4", "batch_size=8", "lr=0.01", "cache_views=2"]


def make_dataset(
    root: Path, n: int = 24, *, task: str = "multilabel", single_class: bool = False
) -> Path:
    """Gold discs on paper; every other one carries a dark "scratch" across it."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(n):
        img = np.full((180, 240, 3), DEFAULT_MAT.paper_rgb[::-1], np.uint8)
        cx, cy, r = (
            int(rng.integers(90, 150)),
            int(rng.integers(70, 110)),
            int(rng.integers(35, 45)),
        )
        cv2.circle(img, (cx, cy), r, (40, 170, 210), -1, cv2.LINE_AA)
        defect = (i % 2 == 1) and not single_class
        if defect:
            a = rng.uniform(0, np.pi)
            dx, dy = int(r * 0.8 * np.cos(a)), int(r * 0.8 * np.sin(a))
            cv2.line(img, (cx - dx, cy - dy), (cx + dx, cy + dy), (20, 40, 60), 3, cv2.LINE_AA)
        img = np.clip(img + rng.normal(0, 2, img.shape), 0, 255).astype(np.uint8)
        name = f"img_{i:03d}.png"
        cv2.imwrite(str(root / name), img)
        if task == "single_label":
            labels = ["scratch" if defect else "good"]
        else:
            labels = ["scratch"] if defect else []
        records.append(
            Record(
                id=f"p{i}",
                image=name,
                sha256=hashlib.sha256((root / name).read_bytes()).hexdigest(),
                width=240,
                height=180,
                piece_id=f"piece{i}",
                labels=labels,
                source="synthetic",
                split="val" if i % 6 < 2 else "train",
            )
        )
    classes = ["good", "scratch"] if task == "single_label" else list(DEFECT_LABELS)
    header = Header(name="tiny", task=task, classes=classes)  # type: ignore[arg-type]
    Manifest(header=header, records=records).write(root / "manifest.jsonl")
    return root / "manifest.jsonl"


def run(manifest: Path, out: Path, *extra: str, resume: Path | None = None) -> Path:
    argv = ["--manifest", str(manifest), "--out", str(out)]
    for s in [*FAST, f"cache_dir={out.parent / 'cache'}", *extra]:
        argv += ["--set", s]
    if resume:
        argv += ["--resume", str(resume)]
    return main(get_args_parser().parse_args(argv))


@pytest.fixture(autouse=True)
def _threads() -> None:
    torch.set_num_threads(2)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("tiny"))


def _rows(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


def test_frozen_cached_training_learns(tiny: Path, tmp_path: Path) -> None:
    out = run(tiny, tmp_path / "run", "epochs=6", "freeze_blocks=4")
    rows = _rows(out)
    assert [r["epoch"] for r in rows] == list(range(6))
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert rows[-1]["val_ap"]["scratch"] > 0.9  # scratched discs rank above clean ones
    assert all(r["images_per_s"] > 0 and r["epoch_wall_s"] > 0 for r in rows)
    assert load_config(out / "config.yaml").epochs == 6
    trained = load_trained(out / "checkpoint.pt")
    assert trained.epoch == 5 and trained.preprocess.input_size == 64
    # The default label view trains the visual defects only (spec defects are measured).
    assert trained.classes == list(VISUAL_DEFECTS) and (out / "best.pt").is_file()
    probs, targets, records = predict_manifest(out / "checkpoint.pt", tiny, "val")
    assert probs.shape == (8, len(VISUAL_DEFECTS)) and targets.shape == probs.shape
    assert len(records) == 8 and ((probs >= 0) & (probs <= 1)).all()


def test_label_set_all_trains_every_manifest_class(tiny: Path, tmp_path: Path) -> None:
    out = run(tiny, tmp_path / "run", "epochs=1", "label_set=all")
    trained = load_trained(out / "checkpoint.pt")
    assert trained.classes == list(DEFECT_LABELS)
    assert trained.dataset_versions["train"] == Manifest.read(tiny).header.version


def test_resume_continues_where_it_stopped(tiny: Path, tmp_path: Path) -> None:
    out = run(tiny, tmp_path / "run", "epochs=2")
    best_before = load_trained(out / "best.pt").metrics["val_loss"]
    run(tiny, out, "epochs=3", resume=out / "checkpoint.pt")
    rows = _rows(out)
    assert [r["epoch"] for r in rows] == [0, 1, 2]
    # best.pt is still the epoch with the lowest validation loss, across the resume.
    assert load_trained(out / "best.pt").metrics["val_loss"] == min(r["val_loss"] for r in rows)
    assert min(r["val_loss"] for r in rows) <= best_before


def test_full_finetune_single_label(tmp_path: Path) -> None:
    manifest = make_dataset(tmp_path / "single", n=12, task="single_label")
    out = run(manifest, tmp_path / "run", "freeze_blocks=0", "epochs=1", "weights=none")
    row = _rows(out)[-1]
    assert 0.0 <= row["val_accuracy"] <= 1.0
    assert np.asarray(row["val_confusion"]).shape == (2, 2)
    assert np.asarray(row["val_confusion"]).sum() == 4


def test_single_class_and_missing_files_are_refused(tmp_path: Path) -> None:
    one = make_dataset(tmp_path / "one", n=8, single_class=True)
    with pytest.raises(DataError, match="single class"):
        run(one, tmp_path / "r1")
    broken = make_dataset(tmp_path / "broken", n=8)
    (broken.parent / "img_001.png").unlink()
    with pytest.raises(DataError, match="missing"):
        run(broken, tmp_path / "r2")


def test_bad_settings_are_refused(tiny: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="epochs"):
        run(tiny, tmp_path / "r", "epochs=zero")
    with pytest.raises(DataError, match="learning_rate"):
        run(tiny, tmp_path / "r", "learning_rate=1")
    with pytest.raises(DataError, match="key=value"):
        run(tiny, tmp_path / "r", "epochs")


def test_existing_run_folder_is_not_overwritten(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text("{}\n")
    with pytest.raises(DataError, match="already holds a run"):
        run(tiny, out)


@pytest.mark.slow
def test_ddp_two_cpu_processes_end_with_identical_weights(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    args = ["--manifest", str(tiny), "--out", str(out)]
    for s in [*FAST, "epochs=2", f"cache_dir={tmp_path / 'cache'}", "freeze_blocks=6"]:
        args += ["--set", s]
    env = {**os.environ, "KITO_DDP_DUMP": str(tmp_path / "rank{rank}.pt"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    subprocess.run([*cmd, "-m", "training.train", *args], check=True, env=env, timeout=300)
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    assert len(_rows(out)) == 2


def test_cli_train_runs_and_reports_bad_data_in_one_line(tiny: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from kito.cli import app

    sets = [x for s in [*FAST, "epochs=1", f"cache_dir={tmp_path / 'c'}"] for x in ("--set", s)]
    ok = CliRunner().invoke(
        app, ["train", "--manifest", str(tiny), "--out", str(tmp_path / "r"), *sets]
    )
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "r" / "checkpoint.pt").is_file()
    one = make_dataset(tmp_path / "one", n=6, single_class=True)
    bad = CliRunner().invoke(app, ["train", "--manifest", str(one), "--out", str(tmp_path / "r2")])
    assert bad.exit_code == 2
    assert "single class" in bad.output and "Traceback" not in bad.output


def test_predict_needs_to_know_where_the_images_are(tiny: Path, tmp_path: Path) -> None:
    from qc_model.network import build_model

    model = build_model(num_classes=len(DEFECT_LABELS), weights="none")
    manifest = Manifest.read(tiny)
    with pytest.raises(DataError, match="root="):
        predict_manifest(model, manifest, "val")
    probs, targets, _ = predict_manifest(
        model, manifest, "val", root=tiny.parent, preprocess=load_config(None).preprocess
    )
    assert probs.shape == targets.shape == (8, len(DEFECT_LABELS))


@pytest.mark.slow
def test_trains_on_synthetic_renderer_output(tmp_path: Path) -> None:
    generate = pytest.importorskip("training.synth.generate")
    from qc_model.catalog import default_catalog_dir

    opts = generate.SynthOptions(count=40, size=512, seed=5, defect_rate=0.6)
    generate.generate_dataset(default_catalog_dir(), tmp_path / "synth", opts, workers=1)
    out = run(tmp_path / "synth" / "manifest.jsonl", tmp_path / "run", "epochs=3")
    rows = _rows(out)
    assert len(rows) == 3 and rows[-1]["train_loss"] < rows[0]["train_loss"]


def test_default_config_file_matches_the_code_defaults() -> None:
    from training.config import TrainConfig

    path = Path(__file__).resolve().parents[2] / "configs" / "train_default.yaml"
    assert load_config(path) == TrainConfig()
    assert load_config(path, ["preprocess.input_size=320"]).preprocess.input_size == 320


def test_training_and_export_refuse_the_frozen_holdout(tiny: Path, tmp_path: Path) -> None:
    from qc_model.holdout import HoldoutError, check_against_default, freeze
    from training.export import export_package

    holdout = tmp_path / "holdout"
    freeze(tiny, holdout, split="val")
    argv = ["--manifest", str(tiny), "--out", str(tmp_path / "run"), "--holdout", str(holdout)]
    with pytest.raises(HoldoutError, match="8 photos belong to the frozen holdout"):
        main(get_args_parser().parse_args(argv))
    assert not (tmp_path / "run").exists()  # refused before anything was written
    with pytest.raises(HoldoutError, match="belong to the frozen holdout"):
        export_package(tmp_path / "none.pt", tiny, tmp_path / "pkg", holdout=holdout)
    # The same data without the holdout's photos is accepted.
    m = Manifest.read(tiny)
    train_only = Manifest(header=m.header, records=m.split("train"))
    assert check_against_default(train_only, "train split", holdout) is True


def test_trunk_features_are_cached_on_disk_per_photo(tiny: Path, tmp_path: Path) -> None:
    from qc_model.network import build_model
    from training.augment import build_augment
    from training.dataset import CropDataset, CropStore, cache_views, load_manifest
    from training.feature_cache import FeatureCache

    cfg = load_config(None, ["preprocess.input_size=64"])
    manifest, root = load_manifest(tiny)
    records = manifest.split("train")
    store = CropStore(root, cfg.preprocess, tmp_path / "crops")
    data = CropDataset(records, np.zeros(len(records)), store, build_augment(cfg.augment, 0))
    model = build_model(num_classes=7, weights="imagenet", freeze_blocks=6)
    disk = FeatureCache(tmp_path, model, cfg.preprocess, cfg.augment)
    calls = []
    trunk = model.forward_trunk
    model.forward_trunk = lambda x: calls.append(len(x)) or trunk(x)  # type: ignore[method-assign]

    first = cache_views(model, data, 2, torch.device("cpu"), quiet=True, disk=disk)
    assert sum(calls) == 2 * len(records) and len(list(disk.dir.glob("*.pt"))) == len(records)
    calls.clear()
    again = cache_views(model, data, 2, torch.device("cpu"), quiet=True, disk=disk)
    assert calls == [] and torch.equal(first, again)  # read back, not recomputed
    # One view asked for: the stored clean view; more views than stored: computed again.
    assert torch.equal(
        cache_views(model, data, 1, torch.device("cpu"), quiet=True, disk=disk)[:, 0],
        first[:, 0],
    )
    cache_views(model, data, 3, torch.device("cpu"), quiet=True, disk=disk)
    assert sum(calls) == 3 * len(records)
    # Another trunk (other frozen weights) or other preprocessing: another folder.
    other = build_model(num_classes=7, weights="none", freeze_blocks=6)
    assert FeatureCache(tmp_path, other, cfg.preprocess, cfg.augment).dir != disk.dir
    small = cfg.preprocess.model_copy(update={"input_size": 32})
    assert FeatureCache(tmp_path, model, small, cfg.augment).dir != disk.dir
    assert (
        FeatureCache(
            tmp_path,
            build_model(num_classes=3, weights="imagenet", freeze_blocks=6),
            cfg.preprocess,
            cfg.augment,
        ).dir
        == disk.dir
    )
