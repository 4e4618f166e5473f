"""A tiny but real model package (ONNX + package.json, parity-checked) and photos on the mat."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from qc_model.mat import DEFAULT_MAT

CLASSES = ["scratch", "tarnish", "bent"]
INPUT = 32


def mat_photo(px_per_mm: float = 4.0, diameter_mm: float = 30.0, pair: bool = True) -> np.ndarray:
    """The calibration mat with one or two brass-coloured hoops (outer diameter as given)."""
    img = DEFAULT_MAT.render(px_per_mm)
    h, w = img.shape[:2]
    wire = max(2, round(2.5 * px_per_mm))
    r = round(diameter_mm / 2 * px_per_mm - wire / 2)  # the stroke is centred on the radius
    offset = round((diameter_mm / 2 + 10) * px_per_mm)
    centres = [w // 2 - offset, w // 2 + offset] if pair else [w // 2]
    for cx in centres:
        cv2.circle(img, (cx, h // 2), r, (60, 150, 190), wire, lineType=cv2.LINE_AA)
    return np.asarray(cv2.GaussianBlur(img, (3, 3), 0), np.uint8)


def build_tiny_package(
    out: Path,
    version: str = "tiny-1",
    seed: int = 0,
    classes: list[str] | None = None,
    task: Literal["multilabel", "single_label"] = "multilabel",
) -> Path:
    """Export a small random conv net through the project's own export path (the seed sets
    its weights, the version names it: tiny@<version>; CLASSES multi-label unless given)."""
    classes = classes or CLASSES
    import torch
    from torch import nn

    from qc_model.package import ClassThreshold, PackageMeta
    from qc_model.preprocess import PreprocessConfig, preprocess
    from qc_model.taxonomy import TAXONOMY_VERSION
    from training.export import CalibratedNet, build_package

    class TinyNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(seed)
            self.features = nn.Sequential(nn.Conv2d(3, 8, 3, stride=4, padding=1), nn.ReLU())
            self.fc = nn.Linear(8, len(classes))

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            f = self.features(x)  # (B, C, h, w)
            cam = torch.einsum("kc,bchw->bkhw", self.fc.weight, f)
            return self.fc(f.mean(dim=(2, 3))), cam

    cfg = PreprocessConfig(input_size=INPUT)
    photos = out.parent / f"{out.name}-photos"
    photos.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(2):
        paths.append(photos / f"p{i}.png")
        cv2.imwrite(str(paths[-1]), mat_photo(2.0 + i))
    inputs = np.stack([preprocess(cv2.imread(str(p)), cfg)[0] for p in paths])
    th = ClassThreshold(threshold=0.5, review_low=0.4, review_high=0.8)
    meta = PackageMeta(
        name="tiny",
        version=version,
        taxonomy_version=TAXONOMY_VERSION,
        task=task,
        classes=classes,
        preprocess=cfg,
        heatmap_size=(INPUT // 4, INPUT // 4),
        temperature=1.0,
        thresholds={c: th for c in classes},
        onnx_sha256="0" * 64,
    )
    build_package(CalibratedNet(TinyNet(), 1.0, task), meta, out, paths, inputs)
    return out


BROKEN = ("checksum", "corrupt", "taxonomy", "input_shape")


def broken_copy(src: Path, out: Path, kind: str) -> Path:
    """A copy of the package at `src`, broken one way, under version `<kind>-1`:
    checksum: package.json names another model.onnx hash; corrupt: model.onnx is truncated
    (and package.json names the truncated bytes, so only onnxruntime can tell); taxonomy: built
    for taxonomy version 2; input_shape: package.json says 48 px, the graph takes 32 px."""
    import shutil

    from qc_model.package import MODEL_FILE, read_meta, write_package_json
    from training.export import finish_package

    shutil.copytree(src, out)
    meta = read_meta(out).model_copy(update={"version": f"{kind}-1"})
    if kind == "checksum":
        finish_package(out, meta)
        meta = read_meta(out)
        write_package_json(out, meta.model_copy(update={"onnx_sha256": "ab" * 32}))
    elif kind == "corrupt":
        finish_package(out, meta)
        model = out / MODEL_FILE
        model.write_bytes(model.read_bytes()[:2000])
        from qc_model.manifest import sha256_file

        write_package_json(
            out, read_meta(out).model_copy(update={"onnx_sha256": sha256_file(model)})
        )
    elif kind == "taxonomy":
        finish_package(out, meta.model_copy(update={"taxonomy_version": "2"}))
    elif kind == "input_shape":
        pre = meta.preprocess.model_copy(update={"input_size": 48})
        finish_package(out, meta.model_copy(update={"preprocess": pre}))
    else:
        raise ValueError(kind)
    return out
