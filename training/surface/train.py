"""`kito surface train`: a branch trained on patches of a manifest's train split, scored on val."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from qc_model.errors import DataError
from qc_model.manifest import Manifest, Record
from qc_model.surface import SurfaceConfig
from training.metrics import average_precision
from training.surface.checkpoint import save_surface
from training.surface.config import SurfaceTrainConfig
from training.surface.data import median_scale, prepare
from training.surface.mining import mine_hard_negatives
from training.surface.network import build_surface_net, check_arch
from training.surface.sampler import PatchSampler
from training.surface.scoring import branch_logits


def train_steps(
    model: Any,
    sampler: PatchSampler,
    steps: int,
    batch: int,
    lr: float,
    pos_weight: float,
    mine: Callable[[], None] | None = None,
    mine_every: int = 0,
) -> dict[str, float]:
    """AdamW with a warm-up and a cosine schedule on per-cell weighted BCE; `mine` (if given)
    runs every `mine_every` steps (not counted in patches per second)."""
    import torch
    import torch.nn.functional as F

    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)),
    )
    pw = torch.full((sampler.k, 1, 1), float(pos_weight))
    model.train()
    t0, seen, ema = time.perf_counter(), 0, float("nan")
    bar = tqdm(range(steps), desc="train surface", unit="step")
    mining = 0.0
    for step in bar:
        if mine is not None and mine_every and step and step % mine_every == 0:
            m0 = time.perf_counter()
            mine()
            mining += time.perf_counter() - m0
        x, y = sampler.batch(batch)
        logits = model(torch.from_numpy(x))
        loss = F.binary_cross_entropy_with_logits(logits, torch.from_numpy(y), pos_weight=pw)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        seen += batch
        ema = loss.item() if math.isnan(ema) else 0.98 * ema + 0.02 * loss.item()
        rate = seen / (time.perf_counter() - t0 - mining)
        bar.set_postfix(loss=f"{ema:.4f}", patches_s=f"{rate:.1f}")
    wall = time.perf_counter() - t0
    return {
        "steps": steps,
        "patches": seen,
        "seconds": wall,
        "mining_seconds": mining,
        "patches_per_s": seen / (wall - mining),
    }


def train_surface(
    manifest_path: Path, out: Path, config: SurfaceTrainConfig | None = None
) -> dict[str, Any]:
    """Train a branch on the manifest's train split (needs masks); scores its val split.
    Writes out/surface.pt (training.surface.checkpoint) and out/surface.json; returns what
    surface.json holds besides the classes. SurfaceTrainConfig says what each setting does."""
    import torch

    c = config or SurfaceTrainConfig()
    check_arch(c.arch)
    if c.mine_every < 0 or c.mine_photos < 1:
        raise DataError(
            f"mine_every must be >= 0 and mine_photos >= 1, got {c.mine_every}, {c.mine_photos}"
        )
    if out.exists() and any(out.iterdir()):
        raise DataError(f"{out}: already exists and is not empty; choose a new run folder")
    m, root, classes, train, val, photos_in_split = _photos(manifest_path, c)
    px_per_mm = c.px_per_mm
    if px_per_mm is None:  # the scale the photos have: the median the mat gives
        px_per_mm = median_scale(train[:64], root)
    # Scored in tiles of the patch size it learns on (qc_model.surface.branch_scores).
    cfg = SurfaceConfig(px_per_mm=px_per_mm, tile=c.patch)
    torch.manual_seed(c.seed)
    cache = c.cache or out / "samples"
    samples = prepare(train, root, classes, cfg, cache, c.workers, "surface crops (train)")
    model = build_surface_net(len(classes), arch=c.arch)
    sampler = PatchSampler(
        samples, len(classes), c.patch, c.seed, cfg.stride,
        piece_fraction=c.piece_fraction, hard_fraction=c.hard_fraction,
    )  # fmt: skip
    mined: list[dict[str, float]] = []
    mine_rng = np.random.default_rng([c.seed, 1])

    def mine() -> None:
        centres, found = mine_hard_negatives(
            model, samples, cfg, len(classes), c.mine_photos, mine_rng
        )
        sampler.set_hard(centres)
        mined.append(found)

    use_miner = c.mine_every > 0 and c.hard_fraction > 0
    timing = train_steps(
        model, sampler, c.steps, c.batch, c.lr, c.pos_weight,
        mine if use_miner else None, c.mine_every,
    )  # fmt: skip
    samples.clear()  # the training crops are done with (the sampler holds the same list)
    info: dict[str, Any] = {
        "manifest": str(manifest_path),
        "dataset_version": m.header.version,
        "train_photos": len(train),
        "judged_only": c.judged_only,
        "photos_in_split": photos_in_split,
        "settings": c.settings(),
        "timing": timing,
        "mined": mined,
    }
    if val:
        vs = prepare(val, root, classes, cfg, cache, c.workers, "surface crops (val)")
        z = branch_logits(model, vs, cfg, "score val")
        y = np.stack([s.labels for s in vs])
        info["val"] = {
            name: {"positives": int(y[:, k].sum()), "ap": average_precision(z[:, k], y[:, k])}
            for k, name in enumerate(classes)
        }
    out.mkdir(parents=True, exist_ok=True)
    save_surface(out / "surface.pt", model, classes, cfg, info)
    (out / "surface.json").write_text(json.dumps({"classes": classes, **info}, indent=2))
    return info


def _photos(
    manifest_path: Path, c: SurfaceTrainConfig
) -> tuple[Manifest, Path, list[str], list[Record], list[Record], dict[str, int]]:
    """The manifest, its photo root, the classes, the train and val photos to use, and how
    many each split had before the photo gate."""
    from qc_model.taxonomy import VISUAL_DEFECTS
    from training.predict import resolve_root

    m = Manifest.read(manifest_path)
    root = resolve_root(manifest_path, None)
    classes = list(c.classes or [k for k in VISUAL_DEFECTS if k in (m.header.classes or [])])
    if not classes:
        raise DataError(f"{manifest_path}: none of its classes is a visual defect")
    train = m.split("train")[: c.limit or None]
    val = m.split("val")
    if not train:
        raise DataError(f"{manifest_path}: no photos in split 'train'")
    photos_in_split = {"train": len(train), "val": len(val)}
    if c.judged_only:
        from training.judged import gate_passed

        train = _keep(train, gate_passed(train, root, c.workers, "photo gate (train)"))
        val = _keep(val, gate_passed(val, root, c.workers, "photo gate (val)")) if val else val
        if not train:
            raise DataError(
                f"{manifest_path}: the photo gate passes none of the "
                f"{photos_in_split['train']} training photos (leave out --judged-only)"
            )
    with_masks = [r for r in train if any(k in r.masks for k in r.labels if k in classes)]
    if not with_masks:
        raise DataError(
            f"{manifest_path}: no training photo has a defect mask; the surface branch learns "
            "where defects are and needs masks (kito data synth writes them)"
        )
    return m, root, classes, train, val, photos_in_split


def _keep(records: Sequence[Record], flags: NDArray[np.bool_]) -> list[Record]:
    return [r for r, ok in zip(records, flags, strict=True) if ok]
