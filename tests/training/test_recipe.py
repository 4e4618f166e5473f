"""The training recipe follows the photos (mat, colour, resolution, balance), not a name."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from qc_model.manifest import Header, Manifest, Record
from qc_model.mat import DEFAULT_MAT
from training.config import load_config
from training.recipe import (
    FULL_TUNE_EPOCHS,
    FULL_TUNE_PASSES,
    GREY_PHOTO,
    ON_MAT,
    WHOLE_PHOTO,
    DataProperties,
    choose_recipe,
    full_tune_passes,
    recipe_for,
)


def _props(**kw: object) -> DataProperties:
    base = dict(photos=500, task="single_label", native_side=300, mat_share=0.0, grey_share=0.0,
                rarest_class_share=0.3)  # fmt: skip
    return DataProperties(**{**base, **kw})  # type: ignore[arg-type]


def test_photos_on_the_mat_keep_the_piece_crop_recipe() -> None:
    r = recipe_for(_props(mat_share=0.75))
    assert r.config.name == ON_MAT and r.overrides == []
    assert load_config(r.config).preprocess.crop == "piece"


@pytest.mark.parametrize(
    ("grey", "name", "colour"), [(1.0, GREY_PHOTO, 0.0), (0.2, WHOLE_PHOTO, 0.4)]
)
def test_photos_without_the_mat_are_used_whole(grey: float, name: str, colour: float) -> None:
    r = recipe_for(_props(grey_share=grey))
    cfg = load_config(r.config, r.overrides)
    assert r.config.name == name and cfg.preprocess.crop == "none"
    assert cfg.augment.colour == colour and cfg.augment.feature_flip
    assert cfg.preprocess.input_size == 288  # 300 px photos: the multiple of 32 below
    assert cfg.imbalance == "none"  # 30 % in the rarer class


@pytest.mark.parametrize(("side", "size"), [(100, 224), (300, 288), (320, 320), (4000, 320)])
def test_input_size_follows_the_native_resolution(side: int, size: int) -> None:
    r = recipe_for(_props(native_side=side))
    assert load_config(r.config, r.overrides).preprocess.input_size == size


def test_a_rare_class_gets_class_weights() -> None:
    r = recipe_for(_props(rarest_class_share=0.04))
    assert "imbalance=pos_weight" in r.overrides
    assert not any(
        o.startswith("imbalance") for o in recipe_for(_props(task="multilabel")).overrides
    )


def test_every_named_config_loads_and_says_why() -> None:
    for name in (ON_MAT, WHOLE_PHOTO, GREY_PHOTO):
        path = Path(__file__).resolve().parents[2] / "configs" / name
        load_config(path)
        assert path.read_text().startswith("#")


def _write(root: Path, name: str, img: np.ndarray) -> Record:
    cv2.imwrite(str(root / name), img)
    h, w = img.shape[:2]
    sha = hashlib.sha256((root / name).read_bytes()).hexdigest()
    label = "good" if int(name[1:].split(".")[0]) % 3 else "defective"
    return Record(id=name, image=name, sha256=sha, width=w, height=h, piece_id=name,
                  labels=[label], source="imported", split="train")  # fmt: skip


def _manifest(root: Path, images: list[np.ndarray]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    records = [_write(root, f"p{i}.png", img) for i, img in enumerate(images)]
    header = Header(name="t", task="single_label", classes=["defective", "good"])
    Manifest(header=header, records=records).write(root / "manifest.jsonl")
    return root / "manifest.jsonl"


def test_measured_on_the_photos(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    grey = [np.repeat(rng.integers(0, 255, (64, 80, 1), np.uint8), 3, axis=2) for _ in range(6)]
    r = choose_recipe(_manifest(tmp_path / "grey", grey))
    assert r.properties is not None and r.config.name == GREY_PHOTO
    p = r.properties
    assert (p.photos, p.native_side, p.mat_share, p.grey_share) == (6, 64, 0.0, 1.0)
    assert p.rarest_class_share == pytest.approx(2 / 6)
    colour = [rng.integers(0, 255, (50, 50, 3), np.uint8) for _ in range(4)]
    assert choose_recipe(_manifest(tmp_path / "colour", colour)).config.name == WHOLE_PHOTO
    mat = DEFAULT_MAT.render(4.0)
    on_mat = choose_recipe(_manifest(tmp_path / "mat", [mat, mat.copy(), colour[0]]))
    assert on_mat.config.name == ON_MAT and on_mat.properties is not None
    assert on_mat.properties.mat_share == pytest.approx(2 / 3)


def test_whole_photos_fine_tune_the_whole_network_while_the_cpu_budget_allows() -> None:
    # Real photos without the mat are far from ImageNet and from the renders: the whole network
    # learns (chosen by test and validation accuracy on a real set, docs/BENCHMARKS.md), where
    # the on-mat recipe trains only the last stage on cached features.
    root = Path(__file__).resolve().parents[2] / "configs"
    on_mat = load_config(root / ON_MAT)
    for grey in (1.0, 0.0):
        small = recipe_for(_props(grey_share=grey, photos=1674))
        cfg = load_config(small.config, small.overrides)
        assert cfg.freeze_blocks == 0 < on_mat.freeze_blocks and cfg.epochs == FULL_TUNE_EPOCHS
        assert cfg.preprocess.crop == "none" and cfg.augment.flip_rotate
        assert not cfg.dihedral_tta
        assert "25,110 passes at 288 px, within the CPU budget" in " ".join(small.reasons)
        large = recipe_for(_props(grey_share=grey, photos=20_000))
        cfg = load_config(large.config, large.overrides)
        assert (cfg.freeze_blocks, cfg.epochs, cfg.cache_views) == (4, 10, 1)
        assert cfg.augment.feature_flip and "over the CPU budget" in " ".join(large.reasons)
        gpu = recipe_for(_props(grey_share=grey, photos=20_000), accelerated=True)
        assert load_config(gpu.config, gpu.overrides).freeze_blocks == 0


@pytest.mark.parametrize(
    ("side", "photos", "full"),
    [(300, 2000, True), (300, 2001, False), (100, 3300, True), (100, 3400, False),
     (640, 1600, True), (640, 1700, False)],
)  # fmt: skip
def test_the_budget_counts_passes_at_the_input_size(side: int, photos: int, full: bool) -> None:
    # 2,000 photos x 15 epochs at 288 px = 30,000 passes: the budget exactly. Small photos are
    # upscaled to 224 px (0.6 of a 288 px pass); large ones are capped at 320 px (1.23).
    p = _props(native_side=side, photos=photos)
    size = load_config(recipe_for(p).config, recipe_for(p).overrides).preprocess.input_size
    assert (full_tune_passes(p.photos, size) <= FULL_TUNE_PASSES) is full
    assert (load_config(recipe_for(p).config, recipe_for(p).overrides).freeze_blocks == 0) is full
