"""What the surface branch's tests share: rendered photos, a trained branch, a package.

Session-scoped: made once for all of tests/training/surface, as they were once for the
single test module these tests came from."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_package import build_tiny_package

from qc_model.catalog import default_catalog_dir
from qc_model.manifest import Header, Manifest
from training.surface import SurfaceTrainConfig, train_surface
from training.synth.generate import SynthOptions, generate_dataset


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 photos of a cuff and a hoop (train: scratch, pitting, tarnish), and calib.jsonl: the
    same photos, all in split val."""
    root = tmp_path_factory.mktemp("surface") / "d"
    opts = SynthOptions(
        count=16, size=512, defect_rate=0.7, difficulty=0.3, seed=4,
        designs=("KQ-CUFF-BR-65", "KQ-HOOP-BR-30"),
    )  # fmt: skip
    m = generate_dataset(default_catalog_dir(), root, opts, workers=1)
    calib = [r.model_copy(update={"split": "val"}) for r in m.records]
    Manifest(header=Header(name="calib", classes=m.header.classes), records=calib).write(
        root / "calib.jsonl"
    )
    assert sum("scratch" in r.labels for r in calib) >= 2 and sum(not r.labels for r in calib) >= 4
    return root


@pytest.fixture(scope="session")
def trained(synth: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "surface"
    train_surface(
        synth / "manifest.jsonl", out, SurfaceTrainConfig(steps=3, batch=4, patch=64, workers=1)
    )
    return out


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_package(tmp_path_factory.mktemp("pkg") / "tiny")
