"""Rank training levers for whole-photo recipes on cached trunk features, fast.

    python -m research.photo_levers --manifest DATA/all.jsonl --variants base,ema,tta

The trunk (stem and the first `freeze_blocks` stages) runs once per photo and view (cached on
disk under $KITO_CACHE_DIR like `kito train`'s), then each variant trains the rest of the network
on the cached features for a few epochs and reports argmax accuracy on val and test: plain,
with the mean of the eight dihedral views of each feature map (feature-space test-time
augmentation) and with an exponential moving average of the weights. Variants are chosen by
val; test is printed so the choice can be checked, never to choose.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qc_model.network import build_model
from training import train_utils as tu
from training.config import TrainConfig, load_config
from training.dataset import (
    CropDataset,
    CropStore,
    FeatureDataset,
    cache_views,
    load_manifest,
    split_records,
    targets_for,
)
from training.feature_cache import FeatureCache
from training.recipe import choose_recipe

# name -> --set overrides on top of the chosen recipe
VARIANTS: dict[str, list[str]] = {
    "base": [],
    "ls0": ["label_smoothing=0.0"],
    "lr3e-4": ["lr=0.0003"],
    "lr2e-3": ["lr=0.002"],
    "drop0.5": ["drop_rate=0.5"],
    "wd0.2": ["weight_decay=0.2"],
    "noflip": ["augment.feature_flip=false"],
    "sampler": ["imbalance=sampler"],
    "posw": ["imbalance=pos_weight"],
}


@torch.no_grad()
def predict(net: Any, feats: torch.Tensor, tta: bool) -> np.ndarray:
    """Softmax of the head on cached features; with `tta` the network's own dihedral mean."""
    net.eval()
    net.dihedral_tta = tta
    out = []
    for s in range(0, len(feats), 64):
        z = feats[s : s + 64, 0].float().contiguous(memory_format=torch.channels_last)
        out.append(torch.softmax(net.forward_head(z)[0], 1))
    net.dihedral_tta = False
    return torch.cat(out).numpy()


def features(cfg: TrainConfig, manifest_path: Path) -> dict[str, Any]:
    manifest, root = load_manifest(manifest_path)
    classes, task = list(manifest.header.classes), manifest.header.task
    net = build_model(cfg.backbone, len(classes), task, cfg.weights,
                      freeze_blocks=cfg.freeze_blocks, drop_rate=cfg.drop_rate)  # fmt: skip
    store = CropStore(root, cfg.preprocess, cfg.crop_cache_dir())
    disk = FeatureCache(cfg.crop_cache_dir(), net, cfg.preprocess, cfg.augment)
    out: dict[str, Any] = {"classes": classes, "task": task}
    for split in ("train", "val", "test"):
        recs = split_records(manifest, root, split)
        y = targets_for(recs, classes, task)
        ds = CropDataset(recs, y, store)
        t0 = time.perf_counter()
        out[split] = (cache_views(net, ds, 1, torch.device("cpu"), desc=split, disk=disk), y)
        print(f"features {split}: {len(recs)} photos, {time.perf_counter() - t0:.0f} s", flush=True)
    return out


def run_variant(cfg: TrainConfig, data: dict[str, Any], ema_decay: float) -> list[dict]:
    tu.seed_everything(cfg.seed)
    classes, task = data["classes"], data["task"]
    net = build_model(cfg.backbone, len(classes), task, cfg.weights,
                      freeze_blocks=cfg.freeze_blocks, drop_rate=cfg.drop_rate)  # fmt: skip
    feats, y = data["train"]
    ds = FeatureDataset(feats, y, random_view=True, flip=cfg.augment.feature_flip)
    sampler = None
    if cfg.imbalance == "sampler":
        w = tu.sample_weights(y, task)
        sampler = torch.utils.data.WeightedRandomSampler(w.tolist(), len(w), replacement=True)
    g = torch.Generator().manual_seed(cfg.seed)
    loader = torch.utils.data.DataLoader(
        ds, cfg.batch_size, shuffle=sampler is None, sampler=sampler, generator=g, drop_last=True
    )
    criterion = tu.make_criterion(cfg, y, task, len(classes))
    optimizer = tu.make_optimizer(net, cfg)
    scheduler = tu.make_scheduler(optimizer, cfg, len(loader))

    ema = copy.deepcopy(net)
    rows = []
    for epoch in range(cfg.epochs):
        net.train()
        t0 = time.perf_counter()
        for step, (x, t) in enumerate(loader):
            if step % 10 == 0:
                print(f"  step {step}/{len(loader)} {time.perf_counter() - t0:.0f} s", flush=True)
            loss = criterion(
                net.forward_head(x.contiguous(memory_format=torch.channels_last))[0], t
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            with torch.no_grad():
                for pe, p in zip(ema.state_dict().values(), net.state_dict().values(), strict=True):
                    if pe.dtype.is_floating_point:
                        pe.mul_(ema_decay).add_(p.detach(), alpha=1 - ema_decay)
                    else:
                        pe.copy_(p)
        row: dict[str, Any] = {"epoch": epoch, "wall_s": round(time.perf_counter() - t0, 1)}
        last = epoch == cfg.epochs - 1
        # The eight views cost eight passes of the head: every other epoch on val, test at the
        # end; the average of the weights on val each epoch, on test at the end.
        plan = [(net, "", "val", False), (net, "", "test", False), (ema, "ema_", "val", False)]
        if epoch % 2 == 1 or last:
            plan.append((net, "", "val", True))
        if last:
            plan += [(net, "", "test", True), (ema, "ema_", "test", False)]
        for model, name, split, tta in plan:
            f, yy = data[split]
            t1 = time.perf_counter()
            p = predict(model, f, tta)
            key = f"{name}{split}{'_tta' if tta else ''}"
            row[key] = round(float((p.argmax(1) == yy).mean()), 4)
            row[f"{key}_s"] = round(time.perf_counter() - t1, 1)
            if split == "val" and not tta:
                nll = -np.log(p[np.arange(len(yy)), yy] + 1e-9).mean()
                row[f"{name}val_nll"] = round(float(nll), 4)
        print(row, flush=True)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--manifest", type=Path, required=True)
    ap.add_argument("--variants", default="base", help=f"comma-separated: {', '.join(VARIANTS)}")
    ap.add_argument("--set", action="append", default=[], help="on top of every variant")
    ap.add_argument("--ema", type=float, default=0.99, help="EMA decay per step")
    args = ap.parse_args(argv)
    recipe = choose_recipe(args.manifest)
    base = [*recipe.overrides, *args.set]
    print("recipe", recipe.config.name, base, flush=True)
    data = features(load_config(recipe.config, base), args.manifest)
    for v in args.variants.split(","):
        cfg = load_config(recipe.config, [*base, *VARIANTS[v]])
        print(f"== {v}: {VARIANTS[v]}", flush=True)
        run_variant(cfg, data, args.ema)


if __name__ == "__main__":
    main()
