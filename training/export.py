"""`kito export`: checkpoint -> ONNX model package (calibrated probs + heatmaps), proven by parity.

The package is built in a temporary sibling folder and renamed into place only after
onnxruntime, fed by the project's own preprocessing, matched torch on real photos.
"""

from __future__ import annotations

import copy
import re
import warnings
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from qc_model.errors import DataError
from qc_model.holdout import check_against_default
from qc_model.manifest import Manifest, sha256_file
from qc_model.package import (
    MODEL_FILE,
    PACKAGE_NAME,
    PackageMeta,
)
from qc_model.taxonomy import TAXONOMY_VERSION
from training.calibrate import fit_operating_point
from training.dataset import for_classes
from training.fold_pads import fold_pads
from training.metrics import any_defect, macro_f1

# Written by every package command; imported here too for callers of training.export.
from training.package_io import (  # noqa: F401
    ExportError,
    copy_graphs,
    finish_package,
    git_commit,
    network_alone,
    staged_package,
)

OPSET = 17
PARITY_ATOL = 1e-4  # max |probs_onnx - probs_torch|
HEATMAP_ATOL = 1e-3  # heatmaps are normalised by their max, so a looser bound is honest


class CalibratedNet(nn.Module):
    """The deployed graph: calibrated probabilities and 0..1 class heatmaps from DefectNet."""

    def __init__(self, net: nn.Module, temperature: float, task: str) -> None:
        super().__init__()
        self.net = net
        self.task = task
        self.register_buffer("inv_t", torch.tensor(1.0 / temperature, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, cam = self.net(x)  # (B, K), (B, K, h, w)
        z = logits * self.inv_t
        probs = torch.sigmoid(z) if self.task == "multilabel" else torch.softmax(z, dim=1)
        # Only evidence for a class is drawn; each map scaled to its own peak so the UI can
        # overlay it without knowing the network's logit scale. The epsilon keeps a flat map 0.
        cam = torch.relu(cam)
        heat = cam / (cam.amax(dim=(2, 3), keepdim=True) + 1e-6)
        return probs, heat


def _padded_conv(conv: nn.Conv2d, pad: tuple[int, int, int, int], x: torch.Tensor) -> torch.Tensor:
    return F.conv2d(
        F.pad(x, pad), conv.weight, conv.bias, conv.stride, 0, conv.dilation, conv.groups
    )


def freeze_same_padding(module: nn.Module, input_size: int) -> int:
    """Give timm's TF-style "same" convolutions the constant padding of this input size.

    They compute their padding from the input shape on every call, which exports as a small
    shape-arithmetic graph in front of each strided convolution. The input size of a package is
    fixed, so the padding is too; the parity check still compares against the unmodified model.
    Returns how many convolutions were changed.
    """
    from timm.layers.conv2d_same import Conv2dSame
    from timm.layers.padding import pad_same_arg

    convs = [m for m in module.modules() if isinstance(m, Conv2dSame)]
    sizes: dict[int, list[int]] = {}
    hooks = [
        m.register_forward_pre_hook(
            lambda m, args: sizes.__setitem__(id(m), list(args[0].shape[-2:]))
        )
        for m in convs
    ]
    with torch.no_grad():
        module.eval()(torch.zeros(1, 3, input_size, input_size))
    for h in hooks:
        h.remove()
    for m in convs:
        pad = pad_same_arg(
            sizes[id(m)], list(m.weight.shape[-2:]), list(m.stride), list(m.dilation)
        )
        m.forward = partial(_padded_conv, m, tuple(pad))  # type: ignore[method-assign]
    return len(convs)


def export_onnx(module: nn.Module, input_size: int, path: Path) -> None:
    module = copy.deepcopy(module).eval()
    freeze_same_padding(module, input_size)
    dummy = torch.zeros(1, 3, input_size, input_size)
    # The TorchScript exporter: the dynamo one needs onnxscript, which is not installed. Its
    # deprecation notice is silenced so that export logs show only what matters.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        # F.pad exports as a reversed Slice the exporter cannot fold; onnxruntime folds it.
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1")
        torch.onnx.export(
            module,
            (dummy,),
            str(path),
            input_names=["input"],
            output_names=["probs", "heatmaps"],
            dynamic_axes={"input": {0: "batch"}, "probs": {0: "batch"}, "heatmaps": {0: "batch"}},
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    fold_pads(path)  # the "same" Pads into their Conv: the same arithmetic, one kernel fewer each


@dataclass(frozen=True)
class Parity:
    samples: int
    max_abs_probs: float
    max_abs_heatmaps: float


def check_parity(
    package_dir: Path, torch_module: nn.Module, records: list[Any], torch_inputs: np.ndarray
) -> Parity:
    """ORT on raw photo files through qc_model's preprocessing vs torch on its eval inputs."""
    from qc_model.inference import Inferencer

    inf = Inferencer(package_dir, threads=2)
    preds = inf.predict([Path(r) for r in records])
    onnx_probs = np.stack([np.array(list(p.probs.values())) for p in preds])
    onnx_heat = np.stack([p.heatmaps for p in preds])
    with torch.no_grad():
        t_probs, t_heat = torch_module.eval()(torch.from_numpy(torch_inputs))
    parity = Parity(
        samples=len(records),
        max_abs_probs=float(np.abs(onnx_probs - t_probs.numpy()).max()),
        max_abs_heatmaps=float(np.abs(onnx_heat - t_heat.numpy()).max()),
    )
    if parity.max_abs_probs > PARITY_ATOL or parity.max_abs_heatmaps > HEATMAP_ATOL:
        raise ExportError(
            f"parity check failed on {parity.samples} photos: max |Δprobs| "
            f"{parity.max_abs_probs:.2e} (limit {PARITY_ATOL:g}), max |Δheatmaps| "
            f"{parity.max_abs_heatmaps:.2e} (limit {HEATMAP_ATOL:g}); nothing was written"
        )
    return parity


def export_package(
    checkpoint: Path,
    calibration_manifest: Path,
    out: Path,
    name: str | None = None,
    target_recall: float = 0.97,
    parity_samples: int = 8,
    workers: int = 1,
    holdout: Path | None = None,
) -> PackageMeta:
    """Checkpoint -> calibrated, parity-checked package at `out` (written atomically)."""
    from training.checkpoint_io import load_trained, torch_eval_inputs
    from training.dataset import resolve_root
    from training.predict import predict_manifest

    if out.exists():
        raise DataError(f"{out}: already exists; choose a new package folder")
    if not re.fullmatch(PACKAGE_NAME, name or out.name):
        raise DataError(f"package name {name or out.name!r}: use letters, digits, '.', '_', '-'")
    source = Manifest.read(calibration_manifest)
    # Temperature and thresholds are fitted here: the holdout must not be among those photos.
    check_against_default(source, calibration_manifest, holdout)
    trained = load_trained(checkpoint)
    if source.header.task != trained.task:
        raise DataError(
            f"{calibration_manifest}: task {source.header.task} differs from the checkpoint's "
            f"{trained.task}"
        )
    manifest = for_classes(source, trained.classes, calibration_manifest)
    val = manifest.split("val")
    if not val:
        raise DataError(f"{calibration_manifest}: no photos in split 'val' to calibrate on")
    root = resolve_root(calibration_manifest, None)
    from training.config import default_cache_dir

    cache = default_cache_dir() if workers > 1 else None
    raw, targets, _ = predict_manifest(
        trained.model, manifest, "val", root=root, quiet=False, workers=workers, cache_dir=cache
    )
    op = fit_operating_point(raw, targets, trained.classes, trained.task, target_recall)
    wrapped = CalibratedNet(trained.model, op.calibration.temperature, trained.task).eval()
    thresholds = op.threshold_vector(trained.classes)
    meta = PackageMeta(
        name=name or out.name,
        version=f"{out.name}-{sha256_file(checkpoint)[:8]}",
        taxonomy_version=TAXONOMY_VERSION,
        task=trained.task,
        classes=trained.classes,
        preprocess=trained.preprocess,
        heatmap_size=heatmap_size(wrapped, trained.preprocess.input_size),
        temperature=op.calibration.temperature,
        thresholds=op.choice.thresholds,
        dataset_versions={**trained.dataset_versions, "calibration": source.header.version},
        training={
            "config": trained.config,
            "epoch": trained.epoch,
            "checkpoint_sha256": sha256_file(checkpoint),
        },
        git_commit=git_commit(),
        metrics={
            "calibration": vars(op.calibration),
            "untuned_classes": op.choice.untuned,
            "recall_level": op.choice.recall_level,
            "target_recall": target_recall,
            "val": {
                "photos": len(val),
                "macro_f1": macro_f1(op.val_probs, targets, thresholds),
                "any_defect": any_defect(
                    op.val_probs, targets, thresholds, trained.classes
                ).as_dict(),
            },
        },
        onnx_sha256="0" * 64,
    )
    sample = val[:parity_samples]
    inputs = torch_eval_inputs(manifest, sample, trained.preprocess, root=root)
    return build_package(wrapped, meta, out, [root / r.image for r in sample], inputs)


def heatmap_size(wrapped: nn.Module, input_size: int) -> tuple[int, int]:
    with torch.no_grad():
        _, heat = wrapped.eval()(torch.zeros(1, 3, input_size, input_size))
    return int(heat.shape[2]), int(heat.shape[3])


def build_package(
    wrapped: CalibratedNet,
    meta: PackageMeta,
    out: Path,
    parity_photos: list[Path],
    torch_inputs: np.ndarray,
) -> PackageMeta:
    """Export, embed metadata, prove parity, then move the finished folder to `out`."""
    if not parity_photos:
        raise DataError("the parity check needs at least one photo")
    with staged_package(out) as tmp:
        export_onnx(wrapped, meta.preprocess.input_size, tmp / MODEL_FILE)
        meta = finish_package(tmp, meta)
        parity = check_parity(tmp, wrapped, parity_photos, torch_inputs)
        meta = meta.model_copy(update={"metrics": {**meta.metrics, "parity": vars(parity)}})
        meta = finish_package(tmp, meta)
    return meta
