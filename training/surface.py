"""The surface branch: train it on defect masks, export it, and attach it to a model package.

The defect network scores each photo from its piece crop resized to 224 px and learns from one
label per photo. On the synthetic data its scratch, pitting and finish_flaw scores follow the
design, not the defect (model card, "Finer photos"). The surface branch looks at the same crop
at a fixed scale in pixels per mm (qc_model.surface) and is told where each defect is:

- network: the stem and stages 0-4 of tf_efficientnet_lite0 (ImageNet weights, all trained),
  the stride-16 stages 3-4 upsampled and joined to stage 2's stride-8 features, then a 3x3 +
  1x1 head (`--arch s8`: stages 0-2 only); fully convolutional, one logit per class per
  8 x 8 pixel cell;
- training: random patches, half centred on a defect pixel, with per-cell targets from the
  renderer's masks (any mask pixel in the cell);
- a photo's branch logit for a class is its highest cell.

`attach` puts a trained branch into an existing package: for each class it fits, on the
calibration set's val split, a logistic combination of the package's logit and the branch's
(`Fusion`), keeps it only where it ranks validation photos better (AP), then chooses the
thresholds again exactly as `kito export` does. A package that already has a branch can give
it to another (`kito retrain` carries the champion's branch to the challenger).
"""

from __future__ import annotations

import json
import math
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from qc_model.errors import DataError
from qc_model.inference import read_image
from qc_model.manifest import Manifest, Record
from qc_model.package import (
    MODEL_FILE,
    SURFACE_CELLS,
    SURFACE_FILE,
    SURFACE_INPUT,
    SURFACE_LOGITS,
    Fusion,
    PackageMeta,
    SurfaceMeta,
    open_session,
    read_meta,
    surface_runner,
)
from qc_model.preprocess import PreprocessConfig, crop_to_piece
from qc_model.surface import (
    SurfaceConfig,
    branch_scores,
    fuse_probability,
    logit,
    surface_crop,
    surface_input,
    surface_piece_mask,
    window,
)
from training.cell_targets import extract_mask
from training.metrics import average_precision

MAX_CLASSES = 8  # class membership is kept as bits of one uint8 per pixel
SURFACE_FORMAT = "kito-surface/1"
STAGES = 3  # stem + stages 0-2: stride 8
PARITY_ATOL = 1e-3  # max |Δ| of branch logits and of fused probabilities, ORT vs torch
# A class is fused only if its validation AP rises by at least this much: on ~1 500 photos a
# smaller rise is within what another validation draw would change.
MIN_AP_GAIN = 0.01
# A design's offset is the mean branch logit of its val photos without the defect, less all
# designs' mean, shrunk as if this many photos at the overall mean were added: a design with
# 20 such photos gets half its measured difference (docs/MODEL.md, "Design offsets").
DESIGN_SHRINK = 20.0


class NoGainError(DataError):
    """The branch improves no class's validation AP: attaching it would change nothing good."""


@dataclass
class Sample:
    """One photo's piece crop at the branch's scale and its defect masks as bits."""

    image: NDArray[np.uint8]  # (H, W, 3) RGB, H and W multiples of the stride
    bits: NDArray[np.uint8]  # (H, W): bit k set where class k's mask is
    labels: NDArray[np.bool_]  # (K,)
    design: str
    # (H, W) the piece as the locator found it, through the same crop (None: no piece found)
    piece: NDArray[np.bool_] | None = None


def photo_surface_crop(
    bgr: NDArray[np.uint8], preprocess: PreprocessConfig, cfg: SurfaceConfig
) -> tuple[NDArray[np.uint8], tuple[int, int, int, int], float, NDArray[np.bool_] | None]:
    """The serving path (Inferencer.prepare): the locator's box, the mat's scale, the resample;
    (RGB crop, box, factor, the piece's mask on the crop's grid or None)."""
    crop = crop_to_piece(bgr, preprocess)
    box = (int(crop.box[0]), int(crop.box[1]), int(crop.box[2]), int(crop.box[3]))
    loc = crop.location
    mat = loc.mat if loc is not None else None
    rgb, f = surface_crop(bgr, box, cfg, mat.px_per_mm if mat is not None else None)
    piece = surface_piece_mask(loc.mask, box, rgb.shape[:2], f) if loc is not None else None
    return rgb, box, f, piece


def make_sample(
    record: Record,
    root: Path,
    classes: Sequence[str],
    cfg: SurfaceConfig,
    preprocess: PreprocessConfig | None = None,
) -> Sample:
    """A record's branch input and its masks carried through the same crop and resample."""
    if len(classes) > MAX_CLASSES:
        raise DataError(f"at most {MAX_CLASSES} classes, got {len(classes)}")
    bgr = read_image(root / record.image)
    rgb, box, f, piece = photo_surface_crop(bgr, preprocess or PreprocessConfig(), cfg)
    side = box[2] - box[0]
    size = rgb.shape[0] if f == 1.0 else max(cfg.stride, round(side * f))
    bits = np.zeros(rgb.shape[:2], np.uint8)
    for k, name in enumerate(classes):
        rel = record.masks.get(name) if name in record.labels else None
        if rel is None:
            continue
        full = cv2.imread(str(root / rel), cv2.IMREAD_GRAYSCALE)
        if full is None or full.shape[:2] != (record.height, record.width):
            raise DataError(f"{record.id}: mask {rel} for {name} is missing or not photo-sized")
        m = extract_mask(np.asarray(full > 0, np.uint8) * 255, box)
        if f != 1.0:  # area resampling then "any coverage": a pit of one pixel stays
            m = cv2.resize(m, (size, size), interpolation=cv2.INTER_AREA)
        bits[: m.shape[0], : m.shape[1]] |= (m[: bits.shape[0], : bits.shape[1]] > 0).astype(
            np.uint8
        ) << k
    labels = np.array([c in record.labels for c in classes])
    return Sample(rgb, bits, labels, record.design_id or "(none)", piece)


def _prepare_one(job: tuple[Record, Path, tuple[str, ...], SurfaceConfig, Path]) -> Path:
    record, root, classes, cfg, out = job
    if not out.is_file():
        s = make_sample(record, root, classes, cfg)
        tmp = out.with_suffix(".tmp.npz")
        extra = {} if s.piece is None else {"piece": s.piece}
        np.savez(
            tmp, image=s.image, bits=s.bits, labels=s.labels, design=np.array(s.design), **extra
        )
        tmp.replace(out)
    return out


def prepare(
    records: Sequence[Record],
    root: Path,
    classes: Sequence[str],
    cfg: SurfaceConfig,
    cache: Path,
    workers: int,
    desc: str,
) -> list[Sample]:
    """Every record's sample, made once (in `workers` processes) and kept in `cache`."""
    import hashlib
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    key = hashlib.sha256(f"{cfg.model_dump_json()}|{','.join(classes)}".encode()).hexdigest()[:8]
    folder = cache / key
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(r, root, tuple(classes), cfg, folder / f"{r.sha256[:40]}.npz") for r in records]
    if workers > 1 and len(jobs) > workers:
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("forkserver")) as pool:
            done = pool.map(_prepare_one, jobs, chunksize=8)
            paths = list(tqdm(done, total=len(jobs), desc=desc, unit="photo"))
    else:
        paths = [_prepare_one(j) for j in tqdm(jobs, desc=desc, unit="photo")]
    out = []
    for p in paths:
        with np.load(p) as z:
            piece = z["piece"] if "piece" in z.files else None
            out.append(Sample(z["image"], z["bits"], z["labels"], str(z["design"]), piece))
    return out


def cell_targets(bits: NDArray[np.uint8], k: int, stride: int) -> NDArray[np.float32]:
    """(H, W) bits -> (K, H // stride, W // stride): 1 where any pixel of the cell has class k."""
    h, w = bits.shape[0] // stride, bits.shape[1] // stride
    cells = bits[: h * stride, : w * stride].reshape(h, stride, w, stride)
    any_bits = np.bitwise_or.reduce(np.bitwise_or.reduce(cells, axis=3), axis=1)  # (h, w)
    return np.stack([(any_bits >> c) & 1 for c in range(k)]).astype(np.float32)


class PatchSampler:
    """Random training patches: half centred near a defect pixel, the other half negatives.

    A negative is centred on a mined hard negative (`set_hard`) with probability
    `hard_fraction`, else on a pixel of the piece (the locator's mask, where the service counts
    cells) with probability `piece_fraction`, else anywhere in the crop."""

    def __init__(
        self,
        samples: Sequence[Sample],
        k: int,
        patch: int,
        seed: int,
        stride: int = 8,
        *,
        piece_fraction: float = 0.0,
        hard_fraction: float = 0.0,
    ) -> None:
        if patch % stride:
            raise DataError(f"patch must be a multiple of {stride}, got {patch}")
        for name, f in (("piece_fraction", piece_fraction), ("hard_fraction", hard_fraction)):
            if not 0.0 <= f <= 1.0:
                raise DataError(f"{name} must be within [0, 1], got {f}")
        self.samples, self.k, self.patch, self.stride = samples, k, patch, stride
        self.piece_fraction, self.hard_fraction = piece_fraction, hard_fraction
        self.rng = np.random.default_rng(seed)
        self.defective = [i for i, s in enumerate(samples) if s.bits.any()]
        self.with_piece = [
            i for i, s in enumerate(samples) if s.piece is not None and s.piece.any()
        ]
        self.hard: NDArray[np.int64] = np.zeros((0, 3), np.int64)  # (sample, y, x) centres

    def set_hard(self, centres: NDArray[np.int64]) -> None:
        """The hard negatives to aim at from now on: (N, 3) rows of (sample, y, x) pixels."""
        self.hard = np.asarray(centres, np.int64).reshape(-1, 3)

    def _negative(self) -> tuple[Sample, int, int]:
        """A negative patch's sample and top-left pixel."""
        rng, p = self.rng, self.patch
        centre: tuple[Sample, int, int] | None = None
        if self.hard_fraction > 0 and len(self.hard) and rng.random() < self.hard_fraction:
            i, cy, cx = (int(v) for v in self.hard[int(rng.integers(len(self.hard)))])
            centre = self.samples[i], cy, cx
        elif self.piece_fraction > 0 and self.with_piece and rng.random() < self.piece_fraction:
            s = self.samples[self.with_piece[int(rng.integers(len(self.with_piece)))]]
            assert s.piece is not None
            ys, xs = np.nonzero(s.piece)
            j = int(rng.integers(len(ys)))
            centre = s, int(ys[j]), int(xs[j])
        if centre is not None:  # anywhere within the middle half of the patch
            s, cy, cx = centre
            jitter = rng.integers(-p // 4, p // 4 + 1, size=2)
            return s, cy + int(jitter[0]) - p // 2, cx + int(jitter[1]) - p // 2
        s = self.samples[int(rng.integers(len(self.samples)))]
        h, w = s.bits.shape
        y = int(rng.integers(min(0, h - p), max(1, h - p + 1)))
        x = int(rng.integers(min(0, w - p), max(1, w - p + 1)))
        return s, y, x

    def one(self) -> tuple[NDArray[np.uint8], NDArray[np.float32]]:
        rng, p = self.rng, self.patch
        if self.defective and rng.random() < 0.5:
            s = self.samples[self.defective[int(rng.integers(len(self.defective)))]]
            present = [c for c in range(self.k) if np.any(s.bits & (1 << c))]
            c = present[int(rng.integers(len(present)))]
            ys, xs = np.nonzero(s.bits & (1 << c))
            j = int(rng.integers(len(ys)))
            jitter = rng.integers(-p // 3, p // 3 + 1, size=2)
            y, x = int(ys[j] + jitter[0]) - p // 2, int(xs[j] + jitter[1]) - p // 2
        else:
            s, y, x = self._negative()
        img, bits = window(s.image, y, x, p), window(s.bits, y, x, p)
        # Orientation carries no meaning on the mat: flips and quarter turns.
        turns = int(rng.integers(4))
        img, bits = np.rot90(img, turns), np.rot90(bits, turns)
        if rng.random() < 0.5:
            img, bits = img[:, ::-1], bits[:, ::-1]
        # Exposure and white balance drift a little between phones.
        gain = rng.uniform(0.85, 1.15) * rng.uniform(0.95, 1.05, size=3)
        img = np.clip(img.astype(np.float32) * gain, 0, 255).astype(np.uint8)
        return img, cell_targets(np.ascontiguousarray(bits), self.k, self.stride)

    def batch(self, n: int) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        pairs = [self.one() for _ in range(n)]
        x = np.stack([surface_input(np.ascontiguousarray(a)) for a, _ in pairs])
        return x, np.stack([t for _, t in pairs])


def _torch_runner(model: Any) -> Callable[[NDArray[np.float32]], NDArray[np.float32]]:
    """The torch branch, put in eval mode, as a `BranchRunner` for branch_scores."""
    import torch

    model.eval()

    def run(x: NDArray[np.float32]) -> NDArray[np.float32]:
        with torch.inference_mode():
            return np.asarray(model(torch.from_numpy(x)).numpy(), np.float32)

    return run


def mine_hard_negatives(
    model: Any,
    samples: Sequence[Sample],
    cfg: SurfaceConfig,
    k: int,
    photos: int,
    rng: np.random.Generator,
    per_class: int = 2,
    min_prob: float = 0.5,
) -> tuple[NDArray[np.int64], dict[str, float]]:
    """Where the branch, scored as the service scores it (tiles, cells near the piece), is
    most wrong: on `photos` random samples, each class's `per_class` highest cells at or
    above `min_prob` with no mask of that class in or next to them. (N, 3) rows of
    (sample index, centre y, centre x) in crop pixels, and what was found."""
    was_training = model.training
    run = _torch_runner(model)
    s, ring = cfg.stride, np.ones((3, 3), np.uint8)
    picked = rng.choice(len(samples), size=min(photos, len(samples)), replace=False)
    rows: list[tuple[int, int, int]] = []
    for i in tqdm(picked, desc="mine hard negatives", unit="photo", leave=False):
        sample = samples[int(i)]
        _, probs = branch_scores(run, sample.image, sample.piece, cfg)
        near = cell_targets(sample.bits, k, s)
        for c in range(min(k, probs.shape[0])):
            free = cv2.dilate(near[c].astype(np.uint8), ring) == 0
            score = np.where(free[: probs.shape[1], : probs.shape[2]], probs[c], 0.0).ravel()
            top = np.argsort(score)[::-1][:per_class]
            for j in top[score[top] >= min_prob]:
                y, x = divmod(int(j), probs.shape[2])
                rows.append((int(i), y * s + s // 2, x * s + s // 2))
    if was_training:
        model.train()
    found = {"photos": float(len(picked)), "cells": float(len(rows))}
    return np.asarray(rows, np.int64).reshape(-1, 3), found


# The branch's architectures (`kito surface train --arch`); a checkpoint records its own.
#   s8:      stem + stages 0-2 of the backbone (stride 8, 40 channels), 3x3 + 1x1 head.
#   s8+s16:  the same plus stages 3-4 (stride 16, 112 channels), upsampled 2x and concatenated
#            with stage 2 before the head: more channels and a wider view at the same 8 px cells.
ARCHS = ("s8", "s8+s16")


def check_arch(arch: str) -> None:
    if arch not in ARCHS:
        raise DataError(f"unknown branch architecture {arch!r}; choose one of {', '.join(ARCHS)}")


def build_surface_net(k: int, weights: str = "imagenet", arch: str = "s8") -> Any:
    """The branch network (ARCHS): (B, 3, H, W) -> (B, K, H / 8, W / 8) cell logits."""
    import torch
    from torch import nn

    from qc_model.network import build_model

    check_arch(arch)
    net: Any = build_model(num_classes=k, weights=weights).backbone
    low_channels = net.blocks[STAGES - 1][-1].conv_pwl.out_channels
    low = [net.conv_stem, net.bn1, *list(net.blocks)[:STAGES]]
    if arch == "s8":
        model: Any = nn.Sequential(*low, _head(low_channels, 64, k))
    else:
        high = nn.Sequential(net.blocks[STAGES], net.blocks[STAGES + 1])  # both at stride 16
        high_channels = high[-1][-1].conv_pwl.out_channels
        model = _two_scale(nn.Sequential(*low), high, _head(low_channels + high_channels, 96, k))
    with torch.no_grad():
        stride = 64 // model(torch.zeros(1, 3, 64, 64)).shape[-1]
    if stride != SurfaceConfig().stride:
        raise DataError(f"branch {arch} has stride {stride}, the service needs 8")
    return model


def _head(channels: int, width: int, k: int) -> Any:
    from torch import nn

    head = nn.Sequential(
        nn.Conv2d(channels, width, 3, padding=1, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU6(inplace=True),
        nn.Conv2d(width, k, 1),
    )
    nn.init.constant_(head[-1].bias, -4.0)  # most cells hold no defect
    return head


def _two_scale(low: Any, high: Any, head: Any) -> Any:
    """The s8+s16 network (torch is imported here, as everywhere in this module, on use)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class TwoScale(nn.Module):
        """Stride-8 features plus the next stage's, brought back to stride 8, into one head."""

        def __init__(self, low: nn.Module, high: nn.Module, head: nn.Sequential) -> None:
            super().__init__()
            self.low, self.high, self.head = low, high, head

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            f8 = self.low(x)
            f16 = F.interpolate(self.high(f8), scale_factor=2.0, mode="nearest")
            # An odd stride-8 side gives a stride-16 side rounded up: cut the extra row/column.
            f16 = f16[:, :, : f8.shape[2], : f8.shape[3]]
            return self.head(torch.cat([f8, f16], dim=1))

    return TwoScale(low, high, head)


def net_arch(model: Any) -> str:
    """The ARCHS name of a branch network built by build_surface_net."""
    return "s8+s16" if hasattr(model, "high") else "s8"


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


def branch_logits(
    model: Any, samples: Sequence[Sample], cfg: SurfaceConfig, desc: str
) -> NDArray[np.float64]:
    """(N, K): each class's branch logit (torch), counted as the service counts it
    (qc_model.surface.branch_scores)."""
    run = _torch_runner(model)
    out = [branch_scores(run, s.image, s.piece, cfg)[0] for s in tqdm(samples, desc=desc)]
    return np.stack(out) if out else np.zeros((0, 0))


def save_surface(
    path: Path, model: Any, classes: Sequence[str], cfg: SurfaceConfig, info: dict[str, Any]
) -> None:
    import torch

    from training.atomic import write_atomic

    state = {
        "format": SURFACE_FORMAT,
        "arch": net_arch(model),
        "model": model.state_dict(),
        "classes": list(classes),
        "config": cfg.model_dump(mode="json"),
        "info": info,
    }
    write_atomic(path, lambda tmp: torch.save(state, tmp), suffix=".pt")


def load_surface(path: Path) -> tuple[Any, list[str], SurfaceConfig, dict[str, Any]]:
    import torch

    if not path.is_file():
        raise DataError(f"{path}: no such surface checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say so, not a traceback
        raise DataError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != SURFACE_FORMAT:
        raise DataError(f"{path}: not a surface checkpoint (kito surface train writes them)")
    classes = list(state["classes"])
    model = build_surface_net(len(classes), weights="none", arch=state.get("arch", "s8"))
    model.load_state_dict(state["model"])
    return model.eval(), classes, SurfaceConfig.model_validate(state["config"]), state["info"]


def train_surface(
    manifest_path: Path,
    out: Path,
    *,
    classes: Sequence[str] | None = None,
    px_per_mm: float | None = None,
    steps: int = 5000,
    batch: int = 32,
    patch: int = 96,
    lr: float = 1e-3,
    pos_weight: float = 5.0,
    limit: int = 0,
    workers: int = 1,
    seed: int = 0,
    cache: Path | None = None,
    judged_only: bool = False,
    piece_fraction: float = 0.5,
    hard_fraction: float = 0.5,
    mine_every: int = 1000,
    mine_photos: int = 400,
    arch: str = "s8+s16",
) -> dict[str, Any]:
    """Train a branch on the manifest's train split (needs masks); scores its val split.

    `arch`: the network (ARCHS); "s8" leaves out the backbone's stride-16 stages (half the
    training time, weaker on every surface class: docs/MODEL.md, "Surface branch").

    Negatives: `piece_fraction` of the patches without an aimed defect are centred on the
    piece rather than anywhere in the crop. With `mine_every` > 0, every that many steps the
    branch is scored on `mine_photos` training crops as the service scores them, and
    `hard_fraction` of the negatives are then centred on its most confident wrong cells
    (`mine_hard_negatives`): a link crossing or an edge that reads as a scratch.

    `judged_only`: train and score on the photos the photo gate passes (training.judged). A
    defect mask on a photo too blurred or too far to show the defect teaches the branch to
    call plain metal a defect; the service never asks about such a photo anyway."""
    import torch

    from qc_model.taxonomy import VISUAL_DEFECTS
    from training.predict import resolve_root

    check_arch(arch)
    if mine_every < 0 or mine_photos < 1:
        raise DataError(
            f"mine_every must be >= 0 and mine_photos >= 1, got {mine_every}, {mine_photos}"
        )
    if out.exists() and any(out.iterdir()):
        raise DataError(f"{out}: already exists and is not empty; choose a new run folder")
    m = Manifest.read(manifest_path)
    root = resolve_root(manifest_path, None)
    classes = list(classes or [c for c in VISUAL_DEFECTS if c in (m.header.classes or [])])
    if not classes:
        raise DataError(f"{manifest_path}: none of its classes is a visual defect")
    train = m.split("train")[: limit or None]
    val = m.split("val")
    if not train:
        raise DataError(f"{manifest_path}: no photos in split 'train'")
    photos_in_split = {"train": len(train), "val": len(val)}
    if judged_only:
        from training.judged import gate_passed

        train = _keep(train, gate_passed(train, root, workers, "photo gate (train)"))
        val = _keep(val, gate_passed(val, root, workers, "photo gate (val)")) if val else val
        if not train:
            raise DataError(
                f"{manifest_path}: the photo gate passes none of the "
                f"{photos_in_split['train']} training photos (leave out --judged-only)"
            )
    with_masks = [r for r in train if any(c in r.masks for c in r.labels if c in classes)]
    if not with_masks:
        raise DataError(
            f"{manifest_path}: no training photo has a defect mask; the surface branch learns "
            "where defects are and needs masks (kito data synth writes them)"
        )
    if px_per_mm is None:  # the scale the photos have: the median the mat gives
        px_per_mm = _median_scale(train[:64], root)
    # Scored in tiles of the patch size it learns on (qc_model.surface.branch_scores).
    cfg = SurfaceConfig(px_per_mm=px_per_mm, tile=patch)
    torch.manual_seed(seed)
    cache = cache or out / "samples"
    samples = prepare(train, root, classes, cfg, cache, workers, "surface crops (train)")
    model = build_surface_net(len(classes), arch=arch)
    sampler = PatchSampler(
        samples, len(classes), patch, seed, cfg.stride,
        piece_fraction=piece_fraction, hard_fraction=hard_fraction,
    )  # fmt: skip
    mined: list[dict[str, float]] = []
    mine_rng = np.random.default_rng([seed, 1])

    def mine() -> None:
        centres, found = mine_hard_negatives(
            model, samples, cfg, len(classes), mine_photos, mine_rng
        )
        sampler.set_hard(centres)
        mined.append(found)

    use_miner = mine_every > 0 and hard_fraction > 0
    timing = train_steps(
        model, sampler, steps, batch, lr, pos_weight, mine if use_miner else None, mine_every
    )
    samples.clear()  # the training crops are done with (the sampler holds the same list)
    info: dict[str, Any] = {
        "manifest": str(manifest_path),
        "dataset_version": m.header.version,
        "train_photos": len(train),
        "judged_only": judged_only,
        "photos_in_split": photos_in_split,
        "settings": {
            "steps": steps,
            "batch": batch,
            "patch": patch,
            "lr": lr,
            "pos_weight": pos_weight,
            "seed": seed,
            "piece_fraction": piece_fraction,
            "hard_fraction": hard_fraction,
            "mine_every": mine_every,
            "mine_photos": mine_photos,
            "arch": arch,
        },
        "timing": timing,
        "mined": mined,
    }
    if val:
        vs = prepare(val, root, classes, cfg, cache, workers, "surface crops (val)")
        z = branch_logits(model, vs, cfg, "score val")
        y = np.stack([s.labels for s in vs])
        info["val"] = {
            c: {"positives": int(y[:, k].sum()), "ap": average_precision(z[:, k], y[:, k])}
            for k, c in enumerate(classes)
        }
    out.mkdir(parents=True, exist_ok=True)
    save_surface(out / "surface.pt", model, classes, cfg, info)
    (out / "surface.json").write_text(json.dumps({"classes": classes, **info}, indent=2))
    return info


def _keep(records: Sequence[Record], flags: NDArray[np.bool_]) -> list[Record]:
    return [r for r, ok in zip(records, flags, strict=True) if ok]


def _median_scale(records: Sequence[Record], root: Path) -> float | None:
    scales = []
    for r in records:
        loc = crop_to_piece(read_image(root / r.image), PreprocessConfig()).location
        if loc is not None and loc.mat is not None:
            scales.append(loc.mat.px_per_mm)
    return float(np.median(scales)) if scales else None


# -- ONNX -----------------------------------------------------------------------------------------


def surface_graph(model: Any) -> Any:
    """The deployed branch: (B, 3, H, W) -> max-cell logits (B, K), cell logits (B, K, h, w)."""
    import torch
    from torch import nn

    class SurfaceGraph(nn.Module):
        def __init__(self, net: nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            cells = self.net(x)  # (B, K, h, w)
            return cells.flatten(2).amax(dim=2), cells

    return SurfaceGraph(model).eval()


def export_surface_onnx(model: Any, path: Path, tile: int | None = None) -> None:
    """The branch as ONNX: any crop size, or (`tile`) only tiles of that size.

    A graph for tiles has its TF-style "same" padding fixed for that size and folded into the
    convolutions (training.fold_pads), and its height and width fixed, so that onnxruntime
    refuses any other size instead of padding it wrongly. The padding of a graph for any size
    follows the input's shape and is computed on every run (a Pad kernel and its shape
    arithmetic before each strided convolution). On 40 tiles of 96 px the fixed graph took
    40 ms against 63 ms on an AVX2 CPU (docs/BENCHMARKS.md, "Folded padding").
    """
    import copy

    import torch

    from training.export import freeze_same_padding
    from training.fold_pads import fold_pads

    if tile:
        model = copy.deepcopy(model).eval()
        freeze_same_padding(model, tile)
    graph = surface_graph(model)
    side = tile or 96
    spatial = {} if tile else {2: "height", 3: "width"}
    cells = {} if tile else {2: "cells_h", 3: "cells_w"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            graph,
            (torch.zeros(1, 3, side, side),),
            str(path),
            input_names=[SURFACE_INPUT],
            output_names=[SURFACE_LOGITS, SURFACE_CELLS],
            dynamic_axes={
                SURFACE_INPUT: {0: "batch", **spatial},
                SURFACE_LOGITS: {0: "batch"},
                SURFACE_CELLS: {0: "batch", **cells},
            },
            opset_version=17,
            do_constant_folding=True,
            dynamo=False,
        )
    # The exporter leaves the class dimension symbolic (it comes out of a reduction); the
    # loader checks it, so it is declared.
    import onnx

    graph_proto = onnx.load(str(path))
    with torch.no_grad():
        k = int(graph(torch.zeros(1, 3, side, side))[0].shape[1])
    for out in graph_proto.graph.output:
        out.type.tensor_type.shape.dim[1].dim_value = k
    onnx.save(graph_proto, str(path))
    if tile:
        fold_pads(path)


def graph_tile(path: Path) -> int | None:
    """The tile size a branch graph is fixed to, or None for a graph that takes any size."""
    import onnx

    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim[2:]
    sides = {d.dim_value for d in dims if d.HasField("dim_value")}
    return sides.pop() if len(sides) == 1 and len(dims) == 2 else None


def _ort_logits(
    session: Any, samples: Sequence[Sample], cfg: SurfaceConfig, desc: str
) -> NDArray[np.float64]:
    run = surface_runner(session)
    out = [branch_scores(run, s.image, s.piece, cfg)[0] for s in tqdm(samples, desc=desc)]
    return np.stack(out)


# -- fusion ---------------------------------------------------------------------------------------


def fit_fusion(
    p_model: NDArray[np.float64], z_surface: NDArray[np.float64], y: NDArray[np.bool_]
) -> Fusion:
    """Logistic regression of y on (logit p_model, z_surface), Newton steps, a little L2."""
    x = np.stack([logit(p_model), np.asarray(z_surface, np.float64), np.ones(len(y))], axis=1)
    t = np.asarray(y, np.float64)
    w = np.array([1.0, 0.0, 0.0])
    ridge = np.diag([1e-3, 1e-3, 0.0]) * len(t)
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -30, 30)))
        grad = x.T @ (p - t) + ridge @ w
        hess = (x * (p * (1 - p))[:, None]).T @ x + ridge + 1e-9 * np.eye(3)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return Fusion(w_model=float(w[0]), w_surface=float(w[1]), bias=float(w[2]))


def apply_fusion(
    p_model: NDArray[np.float64], z_surface: NDArray[np.float64], f: Fusion
) -> NDArray[np.float64]:
    return fuse_probability(p_model, z_surface, f.w_model, f.w_surface, f.bias)


def design_offsets(
    z: NDArray[np.floating],
    negative: NDArray[np.bool_],
    designs: Sequence[str | None],
    shrink: float = DESIGN_SHRINK,
) -> dict[str, float]:
    """Per design, how much higher the branch scores its photos without the defect than all
    designs' (photos of no known design count toward the overall mean only)."""
    z = np.asarray(z, np.float64)
    neg = np.asarray(negative, bool)
    if not neg.any():
        return {}
    overall = float(z[neg].mean())
    names = np.array([d or "" for d in designs])
    out: dict[str, float] = {}
    for d in sorted(set(names[neg]) - {""}):
        m = neg & (names == d)
        out[str(d)] = round(
            (float(z[m].sum()) + shrink * overall) / (int(m.sum()) + shrink) - overall, 6
        )
    return out


def _offset_logits(
    z: NDArray[np.floating], designs: Sequence[str | None] | None, offsets: dict[str, float]
) -> NDArray[np.float64]:
    """A class's branch logits less the offset for each photo's design."""
    z = np.asarray(z, np.float64)
    if designs is None or not offsets:
        return z
    return z - np.array([offsets.get(d, 0.0) if d else 0.0 for d in designs])


def choose_fusion(
    p_model: NDArray[np.float64],
    z_surface: NDArray[np.float64],
    y: NDArray[np.bool_],
    classes: Sequence[str],
    surface_classes: Sequence[str],
    force: Sequence[str] | None = None,
    min_gain: float = MIN_AP_GAIN,
    designs: Sequence[str | None] | None = None,
) -> tuple[dict[str, Fusion], dict[str, dict[str, float]]]:
    """Per class: the fitted fusion, kept where it raises the package's validation AP by at
    least `min_gain` (or, with `force`, for exactly the classes named there).

    With `designs` (each photo's design id), a class's fusion is fitted again on the branch
    logits less each design's offset (`design_offsets`), and the offsets are kept where that
    raises its validation AP by at least `min_gain` over the fusion without them."""
    fusion: dict[str, Fusion] = {}
    report: dict[str, dict[str, float]] = {}
    for j, name in enumerate(surface_classes):
        if name not in classes or (force is not None and name not in force):
            continue
        k = classes.index(name)
        if not y[:, k].any() or y[:, k].all():
            continue
        f = fit_fusion(p_model[:, k], z_surface[:, j], y[:, k])
        ap_model = average_precision(p_model[:, k], y[:, k])
        ap_fused = average_precision(apply_fusion(p_model[:, k], z_surface[:, j], f), y[:, k])
        report[name] = {"val_ap_package": ap_model, "val_ap_fused": ap_fused}
        if designs is not None:
            offsets = design_offsets(z_surface[:, j], ~y[:, k], designs)
            shifted = _offset_logits(z_surface[:, j], designs, offsets)
            f_d = fit_fusion(p_model[:, k], shifted, y[:, k])
            ap_d = average_precision(apply_fusion(p_model[:, k], shifted, f_d), y[:, k])
            report[name]["val_ap_fused_design_offsets"] = ap_d
            if offsets and ap_d >= ap_fused + min_gain:
                f = f_d.model_copy(update={"design_offsets": offsets})
                ap_fused = ap_d
                report[name]["val_ap_fused"] = ap_d
        if force is not None or ap_fused >= ap_model + min_gain:
            fusion[name] = f
    return fusion, report


def fused_probs(
    p_model: NDArray[np.float64],
    z_surface: NDArray[np.float64],
    classes: Sequence[str],
    surface_classes: Sequence[str],
    fusion: dict[str, Fusion],
    designs: Sequence[str | None] | None = None,
) -> NDArray[np.float64]:
    """The package's probabilities with each fused class's branch evidence combined in (its
    design offsets applied when each photo's design is given)."""
    out = np.asarray(p_model, np.float64).copy()
    for name, f in fusion.items():
        k, j = classes.index(name), list(surface_classes).index(name)
        z = _offset_logits(z_surface[:, j], designs, f.design_offsets)
        out[:, k] = apply_fusion(p_model[:, k], z, f)
    return out


# -- attach ---------------------------------------------------------------------------------------


def attach(
    package: Path,
    surface: Path,
    calibration_manifest: Path,
    out: Path,
    *,
    name: str | None = None,
    target_recall: float = 0.97,
    workers: int = 1,
    cache: Path | None = None,
    parity_samples: int = 8,
    fuse: Sequence[str] | None = None,
    holdout: Path | None = None,
    judged_only: bool = False,
    tile: int | None = None,
) -> PackageMeta:
    """A copy of `package` at `out` with the branch from `surface` (a surface.pt, or a package
    that has one), its fusion fitted and the thresholds chosen again on the val split.

    `fuse` names the classes to combine; by default, those whose validation AP improves.
    `judged_only`: fit on the val photos the photo gate passes, the only ones the service asks
    the model about (training.judged); the others would be sent back for a retake.
    `tile`: score the branch in tiles of this size over the piece (0: the whole crop); by
    default as the branch itself says (its SurfaceConfig.tile)."""
    from qc_model.holdout import check_against_default
    from qc_model.inference import Inferencer
    from qc_model.manifest import sha256_file
    from training.calibrate import choose_thresholds
    from training.compare import score_package
    from training.export import finish_package, git_commit, staged_package
    from training.judged import fit_flags, operating_metrics
    from training.predict import resolve_root

    if out.exists():
        raise DataError(f"{out}: already exists; choose a new package folder")
    meta = read_meta(package)
    if meta.task != "multilabel":
        raise DataError(f"{package}: a surface branch needs a multilabel package")
    source = Manifest.read(calibration_manifest)
    check_against_default(source, calibration_manifest, holdout)
    val = source.split("val")
    if not val:
        raise DataError(f"{calibration_manifest}: no photos in split 'val' to calibrate on")
    root = resolve_root(calibration_manifest, None)
    with staged_package(out) as tmp:
        torch_model = None
        if surface.is_dir():
            carried = read_meta(surface).surface
            if carried is None:
                raise DataError(f"{surface}: this package has no surface branch to carry over")
            shutil.copyfile(surface / SURFACE_FILE, tmp / SURFACE_FILE)
            s_classes, cfg = list(carried.classes), carried.config
            training_info = carried.training
        else:
            torch_model, s_classes, cfg, training_info = load_surface(surface)
        if tile is not None:
            if tile % cfg.stride or not 0 <= tile <= 1024:
                raise DataError(
                    f"--tile {tile}: a tile is 0 (the whole crop) or up to 1024 px, a multiple "
                    f"of the branch's {cfg.stride} px cells"
                )
            cfg = cfg.model_copy(update={"tile": tile or None})
        if torch_model is not None:
            export_surface_onnx(torch_model, tmp / SURFACE_FILE, tile=cfg.tile)
        elif (fixed := graph_tile(tmp / SURFACE_FILE)) is not None and fixed != cfg.tile:
            raise DataError(
                f"{surface}: its branch graph takes only {fixed} px tiles; attach the branch's "
                "surface.pt to score it another way"
            )
        session = open_session(tmp / SURFACE_FILE, threads=2)
        samples = prepare(
            val, root, s_classes, cfg, cache or tmp / "samples", workers, "surface crops (val)"
        )
        shutil.rmtree(tmp / "samples", ignore_errors=True)
        z = _ort_logits(session, samples, cfg, "surface branch (val)")
        parity = {"samples": 0, "max_abs_logits": 0.0}
        if torch_model is not None:
            z_torch = branch_logits(torch_model, samples[:parity_samples], cfg, "parity (torch)")
            diff = float(np.abs(z_torch - z[:parity_samples]).max())
            parity = {"samples": len(z_torch), "max_abs_logits": diff}
            if diff > PARITY_ATOL:
                raise DataError(
                    f"surface branch parity failed: max |Δlogit| {diff:.2e} on {len(z_torch)} "
                    f"photos (limit {PARITY_ATOL:g}); nothing was written"
                )
        classes = list(meta.classes)
        plain = score_package(package, val, root, classes)
        y = np.stack([[c in r.labels for c in classes] for r in val])
        if fuse is not None:
            unknown = sorted(set(fuse) - (set(s_classes) & set(classes)))
            if unknown or not fuse:
                raise DataError(
                    f"--fuse {','.join(fuse)}: the branch and the package both score only "
                    f"{', '.join(c for c in s_classes if c in classes)}"
                )
        fit = fit_flags(val, root, workers, judged_only, calibration_manifest)
        designs = [r.design_id for r in val]
        fusion, fit_report = choose_fusion(
            plain.probs[fit], z[fit], y[fit], classes, s_classes,
            force=list(fuse) if fuse else None,
            designs=[d for d, ok in zip(designs, fit, strict=True) if ok],
        )  # fmt: skip
        if not fusion:
            raise NoGainError(
                f"the surface branch improves no class's validation AP over {package.name} "
                f"({json.dumps(fit_report)}); nothing was written"
            )
        probs = fused_probs(plain.probs, z, classes, s_classes, fusion, designs)
        choice = choose_thresholds(probs[fit], y[fit], classes, target_recall=target_recall)
        smeta = SurfaceMeta(
            classes=s_classes,
            config=cfg,
            fusion=fusion,
            onnx_sha256=sha256_file(tmp / SURFACE_FILE),
            training={**training_info, "fit": fit_report, "parity": parity},
        )
        new = meta.model_copy(
            update={
                "name": name or meta.name,
                # The branch and the data its fusion and thresholds were fitted on: the same
                # branch attached on other photos is another package.
                "version": f"{out.name}-{smeta.onnx_sha256[:8]}-{source.header.version[:8]}",
                "thresholds": choice.thresholds,
                "surface": smeta,
                "git_commit": git_commit(),
                # "calibration" stays the temperature's data; "fusion" names the fit's.
                "dataset_versions": {**meta.dataset_versions, "fusion": source.header.version},
                "metrics": operating_metrics(
                    meta.metrics,
                    choice,
                    target_recall,
                    probs[fit],
                    y[fit],
                    classes,
                    judged_only=judged_only,
                    photos_in_split=len(val),
                ),
            }
        )
        shutil.copyfile(package / MODEL_FILE, tmp / MODEL_FILE)
        new = finish_package(tmp, new)
        # The finished package, through the serving path, gives what was fitted here.
        check = val[:parity_samples]
        got = Inferencer(tmp).predict([root / r.image for r in check], designs[: len(check)])
        served = np.array([[p.probs[c] for c in classes] for p in got])
        diff = float(np.abs(served - probs[: len(check)]).max())
        if diff > PARITY_ATOL:
            raise DataError(
                f"the attached package disagrees with the fit: max |Δp| {diff:.2e} on "
                f"{len(check)} photos (limit {PARITY_ATOL:g}); nothing was written"
            )
    return read_meta(out)
