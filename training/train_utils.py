"""Training plumbing: distributed setup, seeds, loss with class balance, optimiser and schedule."""

from __future__ import annotations

import json
import math
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from numpy.typing import NDArray
from torch import nn

from training.config import TrainConfig


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_kind: str) -> Dist:
    """DDP when launched by torchrun (WORLD_SIZE > 1): gloo on CPU, nccl on GPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_kind == "cuda" else "gloo")
    if device_kind == "cuda":
        torch.cuda.set_device(local)
    return Dist(rank, world, local)


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def finish_distributed(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def pick_device(cfg: TrainConfig, d: Dist) -> torch.device:
    if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", d.local_rank)
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_criterion(cfg: TrainConfig, targets: NDArray[Any], task: str, k: int) -> nn.Module:
    """BCE (multi-label) or cross-entropy (single-label), weighted against class imbalance."""
    if task == "single_label":
        weight = None
        if cfg.imbalance == "pos_weight":  # for softmax: inverse-frequency class weights
            counts = np.bincount(targets, minlength=k).astype(np.float64)
            w = counts.sum() / np.maximum(counts, 1) / k
            weight = torch.tensor(np.minimum(w, cfg.max_pos_weight), dtype=torch.float32)
        return nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.label_smoothing)
    pos_weight = None
    if cfg.imbalance == "pos_weight":
        pos = targets.sum(axis=0)
        neg = len(targets) - pos
        # A class with no positives gets weight 1: there is nothing to up-weight.
        pw = np.where(pos > 0, neg / np.maximum(pos, 1), 1.0)
        pos_weight = torch.tensor(np.clip(pw, 1.0, cfg.max_pos_weight), dtype=torch.float32)
    return nn.BCEWithLogitsLoss(pos_weight=pos_weight)


def sample_weights(targets: NDArray[Any], task: str) -> torch.Tensor:
    """Per-photo weights for a sampler that shows each label pattern about equally often."""
    keys = targets if task == "single_label" else [tuple(row) for row in targets.astype(int)]
    uniq: dict[Any, int] = {}
    for key in keys:
        uniq[key] = uniq.get(key, 0) + 1
    return torch.tensor([1.0 / uniq[key] for key in keys], dtype=torch.double)


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    # No weight decay on BatchNorm scales and biases (1-D tensors): it only fights the norm.
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr)


def make_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-step schedule: linear warmup then cosine decay, or OneCycle."""
    total = max(1, cfg.epochs * steps_per_epoch)
    warm = min(total - 1, round(cfg.warmup_epochs * steps_per_epoch))
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=cfg.lr, total_steps=total, pct_start=max(warm / total, 0.01)
        )

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)
        progress = (step - warm) / max(1, total - warm)
        return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def append_jsonl(path: Path, row: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row, sort_keys=True) + "\n")


def average_across_ranks(value: float, count: int, d: Dist) -> float:
    """Sample-weighted mean of a per-rank average."""
    if not d.enabled:
        return value
    t = torch.tensor([value * count, float(count)], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return float(t[0]) / max(float(t[1]), 1.0)
