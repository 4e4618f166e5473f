"""The checkpoint format (checkpoint.pt): weights plus everything needed to resume or export."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qc_model.errors import DataError
from qc_model.manifest import Manifest, Record
from qc_model.network import DefectNet, build_model
from qc_model.preprocess import PreprocessConfig
from training.config import TrainConfig
from training.dataset import CropStore, resolve_root

FORMAT = "kito-checkpoint/1"


@dataclass
class Trained:
    """A model restored from a checkpoint, in eval mode, with what it was trained with."""

    model: DefectNet
    classes: list[str]
    task: str
    preprocess: PreprocessConfig
    config: dict[str, Any]
    dataset_versions: dict[str, str]
    epoch: int
    metrics: dict[str, Any]


def save_checkpoint(
    path: Path,
    model: DefectNet,
    cfg: TrainConfig,
    *,
    classes: list[str],
    task: str,
    epoch: int,
    dataset_versions: dict[str, str],
    metrics: dict[str, Any],
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
) -> None:
    state = {
        "format": FORMAT,
        "model": model.state_dict(),
        "config": cfg.model_dump(mode="json"),
        "backbone": model.backbone_name,
        "classes": classes,
        "task": task,
        "preprocess": cfg.preprocess.model_dump(mode="json"),
        "epoch": epoch,
        "dataset_versions": dataset_versions,
        "metrics": metrics,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng": torch.get_rng_state(),
    }
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # a crash mid-write never leaves a half checkpoint behind


def read_checkpoint(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many kinds for a damaged file
        raise DataError(f"{path}: not a readable checkpoint ({exc})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise DataError(f"{path}: not a Kito checkpoint (expected format {FORMAT})")
    return state


def load_trained(path: Path | str) -> Trained:
    """Rebuild the network of a checkpoint and load its weights (eval mode, on CPU)."""
    state = read_checkpoint(Path(path))
    model = build_model(
        state["backbone"],
        num_classes=len(state["classes"]),
        task=state["task"],
        weights="none",
        freeze_blocks=int(state["config"].get("freeze_blocks", 0)),
        # Written before `pool` left TrainConfig, a run may hold lse: rebuilt as it was trained.
        pool=str(state["config"].get("pool", "avg")),
        pool_r=float(state["config"].get("pool_r", 4.0)),
        dihedral_tta=bool(state["config"].get("dihedral_tta", False)),
    )
    model.load_state_dict(state["model"])
    model.eval()
    preprocess = PreprocessConfig.model_validate(state["preprocess"])
    model.preprocess_config = preprocess
    return Trained(
        model=model,
        classes=list(state["classes"]),
        task=state["task"],
        preprocess=preprocess,
        config=state["config"],
        dataset_versions=dict(state.get("dataset_versions", {})),
        epoch=int(state["epoch"]),
        metrics=dict(state.get("metrics", {})),
    )


def torch_eval_inputs(
    manifest: Manifest | Path,
    records: list[Record],
    preprocess: PreprocessConfig,
    root: Path | None = None,
) -> np.ndarray:
    """(N, 3, S, S) float32 network inputs for `records`, through the one preprocessing path."""
    base = resolve_root(manifest, root)
    store = CropStore(base, preprocess, cache_dir=None)
    from qc_model.preprocess import normalize

    return np.stack([normalize(store.get(r), preprocess) for r in records]).astype(np.float32)
