"""Model package: a good package loads; each kind of damage is refused with a clear reason."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from qc_model.mat import DEFAULT_MAT
from qc_model.package import (
    ClassThreshold,
    PackageError,
    PackageMeta,
    bands,
    load_package,
)
from qc_model.preprocess import PreprocessConfig, preprocess
from qc_model.taxonomy import TAXONOMY_VERSION
from training.export import CalibratedNet, build_package, export_onnx, finish_package

CLASSES = ["scratch", "tarnish", "bent"]
SIZE = 32


class TinyNet(nn.Module):
    """DefectNet's forward contract at toy size: (logits (B,K), cam (B,K,h,w))."""

    def __init__(self, k: int = len(CLASSES)) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, stride=4, padding=1), nn.ReLU())
        self.fc = nn.Linear(8, k)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)  # (B, C, h, w)
        logits = self.fc(f.mean(dim=(2, 3)))
        cam = torch.einsum("kc,bchw->bkhw", self.fc.weight, f)
        return logits, cam


def photo(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((120, 160, 3), DEFAULT_MAT.paper_rgb[::-1], np.uint8)
    cx, cy = int(rng.integers(50, 110)), int(rng.integers(40, 80))
    color = tuple(int(c) for c in rng.integers(20, 200, 3))
    cv2.circle(img, (cx, cy), int(rng.integers(12, 25)), color, -1)
    return img


def meta_for(cfg: PreprocessConfig, **update: object) -> PackageMeta:
    th = ClassThreshold(threshold=0.5, review_low=0.4, review_high=0.8)
    fields = dict(
        name="tiny",
        version="tiny-1",
        taxonomy_version=TAXONOMY_VERSION,
        task="multilabel",
        classes=CLASSES,
        preprocess=cfg,
        heatmap_size=(cfg.input_size // 4, cfg.input_size // 4),
        temperature=1.5,
        thresholds={c: th for c in CLASSES},
        onnx_sha256="0" * 64,
    )
    fields.update(update)
    return PackageMeta(**fields)  # type: ignore[arg-type]


def make_package(out: Path, photos_dir: Path, cfg: PreprocessConfig | None = None) -> PackageMeta:
    cfg = cfg or PreprocessConfig(input_size=SIZE)
    photos_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(3):
        paths.append(photos_dir / f"p{i}.png")
        cv2.imwrite(str(paths[-1]), photo(i))
    inputs = np.stack([preprocess(cv2.imread(str(p)), cfg)[0] for p in paths])
    wrapped = CalibratedNet(TinyNet(), 1.5, "multilabel")
    return build_package(wrapped, meta_for(cfg), out, paths, inputs)


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pkg")
    make_package(root / "tiny", root / "photos")
    return root / "tiny"


@pytest.fixture
def damaged(package: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(package, copy)
    return copy


def _edit_json(folder: Path, fn) -> None:  # type: ignore[no-untyped-def]
    path = folder / "package.json"
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


def test_good_package_loads(package: Path) -> None:
    pkg = load_package(package)
    assert pkg.classes == CLASSES
    assert pkg.meta.preprocess.input_size == SIZE
    assert pkg.meta.metrics["parity"]["max_abs_probs"] <= 1e-4
    assert pkg.session.get_inputs()[0].shape[1:] == [3, SIZE, SIZE]
    assert not list(package.parent.glob(".tiny.tmp-*"))  # the temp folder was renamed away


def test_corrupt_or_replaced_model_is_refused(damaged: Path) -> None:
    model = damaged / "model.onnx"
    model.write_bytes(model.read_bytes()[:200])
    with pytest.raises(PackageError, match="checksum"):
        load_package(damaged)
    import hashlib

    _edit_json(
        damaged, lambda d: d.update(onnx_sha256=hashlib.sha256(model.read_bytes()).hexdigest())
    )
    with pytest.raises(PackageError, match="onnxruntime cannot load"):
        load_package(damaged)


def test_other_taxonomy_version_is_refused(damaged: Path) -> None:
    _edit_json(damaged, lambda d: d.update(taxonomy_version="0"))
    with pytest.raises(PackageError, match="taxonomy version 0"):
        load_package(damaged)


def test_missing_field_is_named(damaged: Path) -> None:
    _edit_json(damaged, lambda d: d.pop("temperature"))
    with pytest.raises(PackageError, match="temperature"):
        load_package(damaged)
    (damaged / "package.json").unlink()
    with pytest.raises(PackageError, match=r"no package\.json"):
        load_package(damaged)


def test_package_json_must_match_embedded_metadata(damaged: Path) -> None:
    _edit_json(damaged, lambda d: d.update(temperature=9.0))
    with pytest.raises(PackageError, match=r"differs .*\['temperature'\]"):
        load_package(damaged)


def test_input_shape_must_match_preprocess(tmp_path: Path) -> None:
    export_onnx(CalibratedNet(TinyNet(), 1.0, "multilabel"), SIZE, tmp_path / "model.onnx")
    finish_package(tmp_path, meta_for(PreprocessConfig(input_size=48), heatmap_size=(8, 8)))
    with pytest.raises(PackageError, match=r"does not match preprocess\.input_size 48"):
        load_package(tmp_path)


def test_thresholds_must_cover_classes_and_be_ordered() -> None:
    with pytest.raises(ValueError, match="missing"):
        meta_for(PreprocessConfig(input_size=SIZE), thresholds={})
    with pytest.raises(ValueError, match="review_low <= threshold"):
        ClassThreshold(threshold=0.3, review_low=0.5, review_high=0.9)


def test_bands_in_the_verdict_shape() -> None:
    t = ClassThreshold(threshold=0.5, review_low=0.4, review_high=0.95)
    assert bands({"bent": t})["bent"] == (0.4, 0.95)


def test_a_fusion_without_design_offsets_is_written_as_before_they_existed() -> None:
    # Packages fitted before offsets existed embed their fusion without the key; a package
    # written now without offsets must serialise the same way, or their metadata would no
    # longer match (load_package compares the embedded copy with package.json).
    from qc_model.package import Fusion

    old = {"w_model": 0.5, "w_surface": 1.0, "bias": -3.0}
    f = Fusion.model_validate(old)
    assert f.design_offsets == {} and f.model_dump() == old
    assert json.loads(f.model_dump_json()) == old
    with_offsets = Fusion.model_validate({**old, "design_offsets": {"KQ-CHAIN-BR-200": 1.5}})
    assert json.loads(with_offsets.model_dump_json())["design_offsets"] == {"KQ-CHAIN-BR-200": 1.5}
    with pytest.raises(ValueError, match="design_offsets"):
        Fusion.model_validate({**old, "design_offsets": {"KQ-CHAIN-BR-200": "high"}})
