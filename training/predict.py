"""Batch prediction over a manifest split with a torch model: the evaluation side's entry point."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from tqdm import tqdm

from qc_model.errors import DataError
from qc_model.manifest import Manifest, Record
from qc_model.network import DefectNet
from qc_model.preprocess import PreprocessConfig, normalize
from training.checkpoint_io import load_trained
from training.dataset import (
    CropStore,
    for_classes,
    load_manifest,
    resolve_root,
    split_records,
    targets_for,
)


def load_for_eval(checkpoint: Path | str) -> DefectNet:
    """The checkpoint's network in eval mode, carrying its PreprocessConfig."""
    return load_trained(checkpoint).model


def probabilities(logits: torch.Tensor, task: str) -> torch.Tensor:
    return torch.sigmoid(logits) if task == "multilabel" else torch.softmax(logits, dim=1)


@torch.no_grad()
def predict_manifest(
    model_or_checkpoint: DefectNet | Path | str,
    manifest: Manifest | Path | str,
    split: str,
    *,
    root: Path | None = None,
    preprocess: PreprocessConfig | None = None,
    batch_size: int = 32,
    cache_dir: Path | None = None,
    device: str | torch.device = "cpu",
    quiet: bool = True,
    workers: int = 1,
) -> tuple[NDArray[np.float32], NDArray[Any], list[Record]]:
    """(probs (N, K), targets (N, K) 0/1 or (N,) class indices, records) for one split.

    With `cache_dir` and workers > 1 the piece crops are made by a process pool first.
    Probabilities are uncalibrated (sigmoid or softmax of the logits): calibration is fitted
    on top of them by training.calibrate.
    """
    trained_classes = None
    if isinstance(model_or_checkpoint, torch.nn.Module):
        model = model_or_checkpoint
    else:
        trained = load_trained(model_or_checkpoint)
        model, trained_classes = trained.model, trained.classes
    base = resolve_root(manifest, root)
    if not isinstance(manifest, Manifest):
        source = manifest
        manifest, base = load_manifest(Path(manifest))
        base = Path(root) if root is not None else base
        if trained_classes is not None:  # e.g. a visual-defects model on a full manifest
            manifest = for_classes(manifest, trained_classes, source)
    cfg = preprocess or getattr(model, "preprocess_config", None) or PreprocessConfig()
    classes, task = list(manifest.header.classes), manifest.header.task
    if model.num_classes != len(classes):
        raise DataError(f"the model has {model.num_classes} outputs, the manifest {len(classes)}")
    records = split_records(manifest, base, split)
    targets = targets_for(records, classes, task)
    store = CropStore(base, cfg, cache_dir)
    if cache_dir is not None and workers > 1:
        store.warm(records, desc=f"locate + crop {split}", quiet=quiet, workers=workers)
    was_training = model.training
    model.eval().to(device)
    out = np.zeros((len(records), len(classes)), np.float32)
    for start in tqdm(range(0, len(records), batch_size), desc=f"predict {split}", disable=quiet):
        batch = records[start : start + batch_size]
        x = torch.from_numpy(np.stack([normalize(store.get(r), cfg) for r in batch]))
        logits, _ = model(x.to(device))
        out[start : start + len(batch)] = probabilities(logits, task).float().cpu().numpy()
    model.train(was_training)
    return out, targets, records
