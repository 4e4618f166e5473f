"""The export tests' data and toy network: a 12-photo dataset with a manifest, `TinyNet` (the
network's forward contract at toy size) and `build_tiny`, which exports it as a package."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from qc_model.manifest import Header, Manifest, Record
from qc_model.mat import DEFAULT_MAT
from qc_model.package import ClassThreshold, PackageMeta
from qc_model.preprocess import PreprocessConfig, preprocess
from qc_model.taxonomy import TAXONOMY_VERSION
from training.export import CalibratedNet, build_package

CLASSES = ["scratch", "tarnish", "bent"]
SIZE = 32


class TinyNet(nn.Module):
    """DefectNet's forward contract at toy size: (logits (B,K), cam (B,K,h,w))."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        # A stem, then a 1x1 convolution: the trunk INT8 quantizes; the class map stays float.
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=4, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 1), nn.ReLU()
        )
        self.fc = nn.Linear(8, len(CLASSES))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)  # (B, C, h, w)
        cam = torch.einsum("kc,bchw->bkhw", self.fc.weight, f) + self.fc.bias[None, :, None, None]
        return cam.mean(dim=(2, 3)), cam


def _photo(rng: np.random.Generator) -> np.ndarray:
    img = np.full((120, 160, 3), DEFAULT_MAT.paper_rgb[::-1], np.uint8)
    colour = tuple(int(c) for c in rng.integers(20, 200, 3))
    cv2.circle(img, (int(rng.integers(50, 110)), int(rng.integers(40, 80))), 20, colour, -1)
    return img


def write_dataset(root: Path) -> Path:
    """12 photos on a mat-coloured card, 6 train / 6 val, random labels, with a manifest."""
    rng = np.random.default_rng(0)
    records = []
    for i in range(12):
        path = root / "images" / f"{i}.png"
        path.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(path), _photo(rng))
        labels = [c for c in CLASSES if rng.random() < 0.4]
        records.append(
            Record(
                id=f"r{i}",
                image=f"images/{i}.png",
                sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                width=160,
                height=120,
                piece_id=f"p{i}",
                labels=labels,
                split="train" if i < 6 else "val",
                source="synthetic",
            )
        )
    Manifest(header=Header(name="tiny", classes=CLASSES), records=records).write(
        root / "manifest.jsonl"
    )
    return root


def _meta(cfg: PreprocessConfig, temperature: float) -> PackageMeta:
    th = ClassThreshold(threshold=0.5, review_low=0.45, review_high=0.7)
    return PackageMeta(
        name="tiny",
        version="1",
        taxonomy_version=TAXONOMY_VERSION,
        task="multilabel",
        classes=CLASSES,
        preprocess=cfg,
        heatmap_size=(SIZE // 4, SIZE // 4),
        temperature=temperature,
        thresholds={c: th for c in CLASSES},
        onnx_sha256="0" * 64,
    )


def build_tiny(out: Path, dataset: Path, shift: float = 0.0) -> PackageMeta:
    cfg = PreprocessConfig(input_size=SIZE)
    photos = sorted((dataset / "images").glob("*.png"))[:4]
    inputs = np.stack([preprocess(cv2.imread(str(p)), cfg)[0] for p in photos]) + shift
    wrapped = CalibratedNet(TinyNet(), 2.0, "multilabel")
    return build_package(wrapped, _meta(cfg, 2.0), out, photos, inputs.astype(np.float32))
