"""training.surface.network: both architectures train, export and serve."""

from __future__ import annotations

from pathlib import Path

import pytest

from qc_model.errors import DataError
from qc_model.inference import Inferencer
from qc_model.manifest import Manifest
from training.surface import SurfaceTrainConfig, attach, load_surface, train_surface
from training.surface.network import net_arch


def test_both_branch_networks_train_export_and_serve(
    synth: Path, trained: Path, tiny: Path, tmp_path: Path
) -> None:
    import torch

    # The default network has the stride-16 stages; its cells are still 8 px, odd sides too
    # (the stride-16 features are cut back to the stride-8 grid).
    model, classes, _, info = load_surface(trained / "surface.pt")
    assert info["settings"]["arch"] == "s8+s16" and net_arch(model) == "s8+s16"
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 72, 88)).shape == (1, len(classes), 9, 11)
    # The stride-8 network alone: rebuilt as it was trained, exported, served.
    train_surface(
        synth / "manifest.jsonl",
        tmp_path / "r",
        SurfaceTrainConfig(steps=2, batch=4, patch=64, arch="s8"),
    )
    small, *_ = load_surface(tmp_path / "r" / "surface.pt")
    assert net_arch(small) == "s8" and not hasattr(small, "high")
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in model.parameters())
    out = tmp_path / "pkg"
    meta = attach(tiny, tmp_path / "r" / "surface.pt", synth / "calib.jsonl", out, fuse=["scratch"])
    assert meta.surface is not None and meta.surface.training["parity"]["max_abs_logits"] <= 1e-3
    photo = synth / Manifest.read(synth / "calib.jsonl").records[0].image
    assert "surface" in Inferencer(out).predict([photo])[0].timings_ms
    with pytest.raises(DataError, match="unknown branch architecture 'wide'"):
        train_surface(
            synth / "manifest.jsonl", tmp_path / "x", SurfaceTrainConfig(steps=1, arch="wide")
        )
    assert not (tmp_path / "x").exists()
