"""`kito train`: fine-tune the defect network on a manifest (torchvision reference-script shape).

Single process: `kito train --config C --manifest M --out runs/NAME`. Several processes or GPUs:
`torchrun --nproc_per_node=N -m training.train --config C --manifest M --out runs/NAME` (DDP).
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, WeightedRandomSampler
from tqdm import tqdm

from qc_model.errors import DataError
from qc_model.holdout import check_against_default
from qc_model.network import DefectNet, build_model
from training import train_utils as tu
from training.augment import build_augment
from training.checkpoint_io import read_checkpoint, save_checkpoint
from training.config import TrainConfig, dump_config, load_config
from training.dataset import (
    CropDataset,
    CropStore,
    FeatureDataset,
    cache_views,
    check_trainable,
    label_view,
    load_manifest,
    split_records,
    targets_for,
)
from training.epoch_metrics import score
from training.feature_cache import FeatureCache
from training.recipe import choose_recipe


class HeadOnly(nn.Module):
    """The trainable part when the trunk is frozen: cached trunk features -> (logits, cam)."""

    def __init__(self, net: DefectNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net.forward_head(z)


@dataclass
class Data:
    train: DataLoader
    val: DataLoader | None
    classes: list[str]
    task: str
    versions: dict[str, str]
    y_train: np.ndarray  # targets in the order this rank trains on


def load_data(
    cfg: TrainConfig, manifest_path: Path, model: DefectNet, device: torch.device, d: tu.Dist
) -> Data:
    source, root = load_manifest(manifest_path)
    manifest = label_view(source, cfg.label_set)
    classes, task = list(manifest.header.classes), manifest.header.task
    train_recs = split_records(manifest, root, "train")
    check_trainable(manifest, train_recs)
    val_recs = split_records(manifest, root, "val")
    store = CropStore(root, cfg.preprocess, cfg.crop_cache_dir())
    if not d.main:
        tu.barrier(d)  # rank 0 locates the pieces first; the others read its crops back
    store.warm(
        train_recs + val_recs, desc="locate + crop", quiet=not d.main, workers=max(cfg.workers, 1)
    )
    if d.main:
        tu.barrier(d)
    y_train = targets_for(train_recs, classes, task)
    idx = list(range(len(train_recs)))
    if d.enabled:
        # A fixed, equal-sized shard per rank (padded by DistributedSampler), so each rank
        # caches features only for the photos it trains on and all ranks take the same steps.
        sampler_: DistributedSampler[int] = DistributedSampler(
            cast(Dataset, idx), d.world, d.rank, seed=cfg.seed
        )
        idx = [int(i) for i in sampler_]
    y_train = y_train[idx]
    augment = build_augment(cfg.augment, cfg.seed + d.rank)
    crops = CropDataset([train_recs[i] for i in idx], y_train, store, augment)
    val_crops = CropDataset(val_recs, targets_for(val_recs, classes, task), store)
    train_ds: Dataset = crops
    val_ds: Dataset | None = val_crops if val_recs else None
    if model.freeze_blocks > 0:
        disk = None
        if cfg.feature_cache:
            disk = FeatureCache(cfg.crop_cache_dir(), model, cfg.preprocess, cfg.augment)
        feats = cache_views(model, crops, cfg.cache_views, device, quiet=not d.main, disk=disk)
        train_ds = FeatureDataset(feats, y_train, random_view=True, flip=cfg.augment.feature_flip)
        if val_recs:
            vfeats = cache_views(
                model, val_crops, 1, device, desc="val", quiet=not d.main, disk=disk
            )
            val_ds = FeatureDataset(vfeats, val_crops.targets, random_view=False)
    sampler = None
    if cfg.imbalance == "sampler" and not d.enabled:
        weights = tu.sample_weights(y_train, task)
        sampler = WeightedRandomSampler(weights.tolist(), len(weights), replacement=True)
    g = torch.Generator().manual_seed(cfg.seed + d.rank)
    workers = cfg.workers if model.freeze_blocks == 0 else 0
    # Workers live for the whole run and start from a fresh interpreter (forkserver): a fork
    # after OpenCV's thread pool has run in this process can hang the child.
    pool: dict[str, Any] = (
        {"persistent_workers": True, "multiprocessing_context": "forkserver"} if workers else {}
    )
    train = DataLoader(
        train_ds, cfg.batch_size, shuffle=sampler is None, sampler=sampler, generator=g,
        num_workers=workers, drop_last=len(y_train) > cfg.batch_size,
        worker_init_fn=_seed_worker_augment, **pool,
    )  # fmt: skip
    val = None
    if val_ds is not None:
        val = DataLoader(val_ds, cfg.batch_size, num_workers=min(workers, 4), **pool)
    # The version of the file as written (the class view is derived from it, not a new data set).
    versions = {"train": source.header.version or source.content_hash()}
    return Data(train, val, classes, task, versions, y_train)


def _seed_worker_augment(worker_id: int) -> None:
    # Each worker gets its own augmentation stream from torch's per-worker seed; otherwise all
    # workers would repeat the same "random" sequence. One thread each: the workers are the
    # parallelism.
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    info = torch.utils.data.get_worker_info()
    augment = getattr(info.dataset, "augment", None) if info is not None else None
    if info is not None and augment is not None:
        augment.set_random_seed(info.seed % 2**32)


def train_one_epoch(
    model: nn.Module,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    loader: DataLoader,
    device: torch.device,
    epoch: int,
    d: tu.Dist,
) -> dict[str, float]:
    model.train()
    total, seen, t0 = 0.0, 0, time.perf_counter()
    bar = tqdm(loader, desc=f"epoch {epoch}", unit="batch", disable=not d.main, leave=False)
    for x, y in bar:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        # NHWC: the CPU convolutions (oneDNN) and GPU tensor cores run faster on it.
        x = x.contiguous(memory_format=torch.channels_last)
        logits, _ = model(x)
        loss = criterion(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total += float(loss.detach()) * len(x)
        seen += len(x)
        bar.set_postfix(loss=f"{total / seen:.4f}")
    wall = time.perf_counter() - t0
    loss_avg = tu.average_across_ranks(total / max(seen, 1), seen, d)
    return {"train_loss": loss_avg, "images_per_s": seen * d.world / wall, "epoch_wall_s": wall}


@torch.no_grad()
def evaluate(
    model: nn.Module, criterion: nn.Module, loader: DataLoader, device: torch.device, task: str,
    classes: list[str],
) -> dict[str, Any]:  # fmt: skip
    model.eval()
    logits_all, targets_all = [], []
    for x, y in loader:
        logits, _ = model(x.to(device))
        logits_all.append(logits.float().cpu())
        targets_all.append(y)
    logits_t, targets_t = torch.cat(logits_all), torch.cat(targets_all)
    loss = float(criterion(logits_t.to(device), targets_t.to(device)))
    return {"val_loss": loss, **score(logits_t, targets_t.numpy(), task, classes)}


def main(args: argparse.Namespace) -> Path:
    recipe = None
    if args.config is None:  # the recipe the data calls for (training.recipe)
        recipe = choose_recipe(Path(args.manifest))
        cfg = load_config(recipe.config, [*recipe.overrides, *(args.set or [])])
    else:
        cfg = load_config(args.config, args.set or [])
    d = tu.init_distributed("cuda" if torch.cuda.is_available() and cfg.device != "cpu" else "cpu")
    device = tu.pick_device(cfg, d)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    tu.seed_everything(cfg.seed)
    out = Path(args.out)
    resume = read_checkpoint(Path(args.resume)) if args.resume else None
    if out.exists() and any(out.iterdir()) and resume is None:
        raise DataError(f"{out}: already holds a run; choose a new --out or pass --resume")
    source = load_manifest(Path(args.manifest))[0]
    # No run may learn from the frozen holdout that champion and challenger are judged on.
    check_against_default(source, args.manifest, args.holdout)
    manifest = label_view(source, cfg.label_set)
    net = build_model(
        cfg.backbone, len(manifest.header.classes), manifest.header.task, cfg.weights,
        freeze_blocks=cfg.freeze_blocks, drop_rate=cfg.drop_rate, bn_stats=cfg.bn_stats,
        dihedral_tta=cfg.dihedral_tta,
    ).to(device, memory_format=torch.channels_last)  # fmt: skip
    data = load_data(cfg, Path(args.manifest), net, device, d)
    if resume is not None and (resume["classes"] != data.classes or resume["task"] != data.task):
        raise DataError(f"{args.resume}: trained for other classes/task than {args.manifest}")
    criterion = tu.make_criterion(cfg, data.y_train, data.task, len(data.classes)).to(device)
    module: nn.Module = HeadOnly(net) if net.freeze_blocks > 0 else net
    if d.enabled:
        ids = [d.local_rank] if device.type == "cuda" else None
        module = nn.parallel.DistributedDataParallel(module, device_ids=ids)
    optimizer = tu.make_optimizer(net, cfg)
    scheduler = tu.make_scheduler(optimizer, cfg, len(data.train))
    start = 0
    if resume is not None:
        net.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
        start = int(resume["epoch"]) + 1
    if d.main:
        out.mkdir(parents=True, exist_ok=True)
        dump_config(cfg, out / "config.yaml")
        if recipe is not None:
            recipe.write(out / "recipe.json")
            tqdm.write(f"recipe {recipe.config.name}: " + "; ".join(recipe.reasons))
    best = _best_so_far(out, cfg.select_by) if resume is not None else WORST
    for epoch in range(start, cfg.epochs):
        row: dict[str, Any] = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"]}
        row |= train_one_epoch(
            module, criterion, optimizer, scheduler, data.train, device, epoch, d
        )
        if data.val is not None:
            row |= evaluate(module, criterion, data.val, device, data.task, data.classes)
        if d.main:
            rank = selection_rank(row, cfg.select_by)
            improved, best = rank < best, min(rank, best)
            # checkpoint.pt resumes (optimizer and schedule too); best.pt is for export.
            for path, resumable in ((out / "checkpoint.pt", True), (out / "best.pt", False)):
                if resumable or improved:
                    save_checkpoint(
                        path, net, cfg, classes=data.classes, task=data.task, epoch=epoch,
                        dataset_versions=data.versions, metrics=row,
                        optimizer=optimizer if resumable else None,
                        scheduler=scheduler if resumable else None,
                    )  # fmt: skip
            tu.append_jsonl(out / "metrics.jsonl", row)
            tqdm.write(_summary(row))
    dump = os.environ.get("KITO_DDP_DUMP")
    if dump and d.enabled:
        # Debug aid (and the DDP test): each rank's final weights, to prove they agree.
        torch.save(net.state_dict(), dump.format(rank=d.rank))
    tu.finish_distributed(d)
    return out


WORST = (float("inf"), float("inf"))


def selection_rank(row: dict[str, Any], select_by: str) -> tuple[float, float]:
    """How good an epoch's row is for best.pt, lower first: (loss, loss) by loss; (-metric,
    loss) by the task's metric (val accuracy or val mAP; a row without one ranks by loss)."""
    loss = float(row.get("val_loss", row.get("train_loss", float("inf"))))
    metric = row.get("val_accuracy", row.get("val_map"))
    if select_by == "metric" and metric is not None:
        return (-float(metric), loss)
    return (loss, loss)


def _best_so_far(out: Path, select_by: str) -> tuple[float, float]:
    """The rank of best.pt, so a resumed run does not overwrite it with a worse one."""
    if not (out / "best.pt").is_file():
        return WORST
    return selection_rank(read_checkpoint(out / "best.pt")["metrics"], select_by)


def _summary(row: dict[str, Any]) -> str:
    keys = ("train_loss", "val_loss", "val_map", "val_accuracy", "images_per_s", "epoch_wall_s")
    parts = [f"{k}={row[k]:.4g}" for k in keys if row.get(k) is not None]
    return f"epoch {row['epoch']}: " + " ".join(parts)


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Train the Kito QC defect network", add_help=True)
    p.add_argument(
        "--config", type=Path, default=None,
        help="YAML settings (training.config); default: the recipe the data calls for "
        "(training.recipe: configs/ by mat, colour, resolution, class balance)",
    )  # fmt: skip
    p.add_argument("--manifest", type=Path, required=True, help="manifest.jsonl or its folder")
    p.add_argument("--out", type=Path, required=True, help="run folder, e.g. runs/NAME")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a setting")
    p.add_argument("--resume", type=Path, default=None, help="checkpoint.pt to continue from")
    p.add_argument(
        "--holdout",
        type=Path,
        default=None,
        help="holdout folder (default $KITO_HOLDOUT_DIR or $KITO_DATA_DIR/holdout); the run "
        "refuses a manifest that shares a photo with its taxonomy's frozen holdout",
    )
    return p


if __name__ == "__main__":
    main(get_args_parser().parse_args())
