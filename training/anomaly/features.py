"""The anomaly model's feature extractor: the ImageNet Lite0 trunk's mid-level stages, exported
to ONNX (anomaly.onnx) so serving needs no torch, and proven against torch before it is kept.

PatchCore's choice for a ResNet (layer2 + layer3) carried to Lite0: stage 2 (40 channels, 1/8)
and stage 4 (112 channels, 1/16), each averaged over its 3 x 3 neighbourhood so a patch feature
sees a little context, the coarser upsampled to the finer grid, concatenated. The trunk stays
the ImageNet one: normality is learnt per design from good photos, no defect labels needed.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from qc_model.anomaly import FEATURES_INPUT, FEATURES_OUTPUT, AnomalyError

DEFAULT_STAGES = (2, 4)
OPSET = 17
PARITY_ATOL = 1e-3


class PatchFeatures(nn.Module):
    """(B, 3, H, W) in [-1, 1] -> (B, D, H/s, W/s) patch features, s the first stage's stride."""

    def __init__(self, stages: Sequence[int] = DEFAULT_STAGES) -> None:
        super().__init__()
        from qc_model.network import build_model

        net: Any = build_model(num_classes=1000, weights="imagenet").backbone
        if not stages or sorted(set(stages)) != list(stages) or stages[-1] >= len(net.blocks):
            raise AnomalyError(f"stages must be increasing, within 0..{len(net.blocks) - 1}")
        self.stages = tuple(int(s) for s in stages)
        self.stem = nn.Sequential(net.conv_stem, net.bn1)
        self.blocks = nn.ModuleList(list(net.blocks)[: self.stages[-1] + 1])
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        taken = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.stages:
                taken.append(F.avg_pool2d(x, 3, 1, 1, count_include_pad=False))
        size = taken[0].shape[-2:]
        maps = [taken[0]] + [
            F.interpolate(t, size=size, mode="bilinear", align_corners=False) for t in taken[1:]
        ]
        return torch.cat(maps, dim=1)

    def dims(self) -> tuple[int, int]:
        """(feature dimension, stride in input pixels)."""
        with torch.no_grad():
            f = self(torch.zeros(1, 3, 64, 64))
        return int(f.shape[1]), 64 // int(f.shape[2])


def export_extractor(module: PatchFeatures, path: Path) -> None:
    """ONNX with dynamic batch, height and width; then onnxruntime must match torch."""
    dummy = torch.zeros(1, 3, 96, 128)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            (dummy,),
            str(path),
            input_names=[FEATURES_INPUT],
            output_names=[FEATURES_OUTPUT],
            dynamic_axes={
                FEATURES_INPUT: {0: "batch", 2: "height", 3: "width"},
                FEATURES_OUTPUT: {0: "batch", 2: "gh", 3: "gw"},
            },
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    check_parity(module, path)


def check_parity(module: PatchFeatures, path: Path, seed: int = 0) -> float:
    """Max |onnx - torch| on random inputs of two sizes; AnomalyError above PARITY_ATOL."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    worst = 0.0
    for h, w in ((64, 96), (160, 112)):
        x = rng.uniform(-1, 1, (1, 3, h, w)).astype(np.float32)
        (got,) = sess.run([FEATURES_OUTPUT], {FEATURES_INPUT: x})
        with torch.no_grad():
            want = module(torch.from_numpy(x)).numpy()
        if got.shape != want.shape:
            raise AnomalyError(f"{path}: ONNX gives {got.shape}, torch {want.shape}")
        worst = max(worst, float(np.abs(got - want).max()))
    if worst > PARITY_ATOL:
        raise AnomalyError(f"{path}: ONNX differs from torch by {worst:.2e} (> {PARITY_ATOL})")
    return worst
