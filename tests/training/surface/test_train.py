"""training.surface.train and .checkpoint: train_surface, its checkpoint and its refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qc_model.errors import DataError
from qc_model.manifest import Manifest
from qc_model.taxonomy import VISUAL_DEFECTS
from training.surface import SurfaceTrainConfig, load_surface, train_surface


def test_training_writes_a_loadable_checkpoint_with_val_scores(trained: Path) -> None:
    _, classes, cfg, info = load_surface(trained / "surface.pt")
    assert classes == [c for c in VISUAL_DEFECTS]
    assert cfg.px_per_mm is not None and 1.0 < cfg.px_per_mm < 4.0  # from the mat, 512 px photos
    assert info["timing"]["patches"] == 12
    report = json.loads((trained / "surface.json").read_text())
    assert report["classes"] == classes and "val" in report


def test_training_mines_hard_negatives_on_schedule(synth: Path, tmp_path: Path) -> None:
    info = train_surface(
        synth / "manifest.jsonl",
        tmp_path / "m",
        SurfaceTrainConfig(steps=5, batch=4, patch=64, mine_every=2, mine_photos=3),
    )
    assert [m["photos"] for m in info["mined"]] == [3.0, 3.0]  # before steps 2 and 4
    assert info["settings"]["hard_fraction"] == 0.5 and info["timing"]["mining_seconds"] > 0
    off = train_surface(
        synth / "manifest.jsonl",
        tmp_path / "o",
        SurfaceTrainConfig(steps=3, batch=4, patch=64, mine_every=0),
    )
    assert off["mined"] == [] and off["timing"]["mining_seconds"] == 0


def test_training_refuses_data_without_masks_and_a_used_folder(
    synth: Path, trained: Path, tmp_path: Path
) -> None:
    m = Manifest.read(synth / "manifest.jsonl")
    bare = [r.model_copy(update={"masks": {}}) for r in m.records]
    Manifest(header=m.header, records=bare).write(synth / "bare.jsonl")
    with pytest.raises(DataError, match="needs masks"):
        train_surface(synth / "bare.jsonl", tmp_path / "x", SurfaceTrainConfig(steps=1))
    with pytest.raises(DataError, match="already exists"):
        train_surface(synth / "manifest.jsonl", trained, SurfaceTrainConfig(steps=1))
    with pytest.raises(DataError, match="mine_photos >= 1"):  # before any crop is made
        train_surface(
            synth / "manifest.jsonl", tmp_path / "n", SurfaceTrainConfig(steps=1, mine_photos=0)
        )
    assert not (tmp_path / "n").exists()
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="not a readable checkpoint"):
        load_surface(tmp_path / "junk.pt")
    # 512 px photos are below the gate's 640 px: with --judged-only nothing is left to train on.
    with pytest.raises(DataError, match="passes none of the"):
        train_surface(
            synth / "manifest.jsonl", tmp_path / "j", SurfaceTrainConfig(steps=1, judged_only=True)
        )


def test_training_judged_only_keeps_the_photos_the_gate_passes(
    synth: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import training.judged

    m = Manifest.read(synth / "manifest.jsonl")
    n_train, n_val = len(m.split("train")), len(m.split("val"))
    monkeypatch.setattr(
        training.judged, "gate_passed", lambda records, *a, **k: np.arange(len(records)) % 2 == 0
    )
    info = train_surface(
        synth / "manifest.jsonl", tmp_path / "j", SurfaceTrainConfig(steps=1, judged_only=True)
    )
    assert info["judged_only"] and info["photos_in_split"] == {"train": n_train, "val": n_val}
    assert info["train_photos"] == (n_train + 1) // 2
    kept_val = m.split("val")[::2]
    for name, row in info.get("val", {}).items():
        assert row["positives"] == sum(name in r.labels for r in kept_val)
