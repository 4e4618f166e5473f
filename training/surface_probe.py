"""Can a network that sees the photo's own pixels, and is told where each defect is, find them?

The bundled network sees the piece crop shrunk or enlarged to its input size and learns from one
label per photo. Its scores for scratch, pitting and finish_flaw follow the design (the within-
design AUROC of `kito eval`), not the defect. This probe asks whether the photos hold enough to
do better, cheaply enough to answer on a 2-core CPU:

- the same piece crop (the serving locator's box), but at the photo's own resolution: no resize;
- the stem and first stages of tf_efficientnet_lite0 (ImageNet weights, trained further) and a
  small head, fully convolutional, one score per class per 8 x 8 pixel cell;
- trained on patches with per-cell targets from the renderer's defect masks;
- a photo's score for a class is its highest cell.

    python -m training.surface_probe --train data/trainval-s1.jsonl --test data/test-s2 \
        --package models/default --out runs/probe

It scores the package on the same photos and writes results.json, a table (stdout and
results.md) and within_design_auroc.png. With `--val` it also answers what the targets would
look like if a package took the probe's scores for the classes where they rank better on
validation: thresholds chosen on validation exactly as `kito export` chooses them (joint, for
0.97 any-defect recall), then macro-F1, recall and false-hold on the test photos. It is a
measurement, not a model package.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Sequence
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
from qc_model.preprocess import PreprocessConfig, crop_to_piece, extract_box
from training.calibrate import choose_thresholds
from training.cell_targets import extract_mask
from training.metrics import (
    any_defect,
    auroc,
    average_precision,
    macro_f1,
    per_class_metrics,
    stratified_auroc,
)
from training.predict import resolve_root

STRIDE = 8  # output cell size in photo pixels (the stem and stages 0-2 of the backbone)
MAX_CLASSES = 8  # class membership is kept as bits of one uint8 per pixel


@dataclass
class Sample:
    """One photo's piece crop at photo resolution and its defect masks as bits."""

    image: NDArray[np.uint8]  # (H, W, 3) RGB
    bits: NDArray[np.uint8]  # (H, W): bit k set where class k's mask is
    labels: NDArray[np.bool_]  # (K,)
    design: str


def load_set(spec: str) -> tuple[list[Record], Path]:
    """`PATH[:SPLIT]` (a manifest or a data set folder) -> (records, image root)."""
    path_s, _, split = spec.partition(":")
    path = Path(path_s)
    manifest_path = path / "manifest.jsonl" if path.is_dir() else path
    if not manifest_path.is_file():
        raise DataError(f"{spec!r}: no manifest at {manifest_path}")
    m = Manifest.read(manifest_path)
    records = m.split(split) if split else list(m.records)  # type: ignore[arg-type]
    if not records:
        raise DataError(f"{spec!r}: no photos" + (f" in split {split!r}" if split else ""))
    return records, resolve_root(manifest_path, None)


def native_sample(
    record: Record, root: Path, classes: Sequence[str], cfg: PreprocessConfig
) -> Sample:
    """The serving locator's square box around the piece, cut from the photo without resizing."""
    if len(classes) > MAX_CLASSES:
        raise DataError(f"at most {MAX_CLASSES} classes, got {len(classes)}")
    bgr = read_image(root / record.image)
    box = crop_to_piece(bgr, cfg).box
    rgb = np.ascontiguousarray(extract_box(bgr, box)[:, :, ::-1])
    bits = np.zeros(rgb.shape[:2], np.uint8)
    for k, name in enumerate(classes):
        rel = record.masks.get(name) if name in record.labels else None
        if rel is None:
            continue
        full = cv2.imread(str(root / rel), cv2.IMREAD_GRAYSCALE)
        if full is None or full.shape[:2] != (record.height, record.width):
            raise DataError(f"{record.id}: mask {rel} for {name} is missing or not photo-sized")
        bits |= (extract_mask(np.asarray(full > 0, np.uint8), box) > 0).astype(np.uint8) << k
    labels = np.array([c in record.labels for c in classes])
    return Sample(rgb, bits, labels, record.design_id or "(none)")


def _prepare_one(job: tuple[Record, Path, tuple[str, ...], Path]) -> Path:
    record, root, classes, out = job
    if not out.is_file():
        s = native_sample(record, root, classes, PreprocessConfig())
        tmp = out.with_suffix(".tmp.npz")
        np.savez(tmp, image=s.image, bits=s.bits, labels=s.labels, design=np.array(s.design))
        tmp.replace(out)
    return out


def prepare(
    records: Sequence[Record],
    root: Path,
    classes: Sequence[str],
    cache: Path,
    workers: int,
    desc: str,
) -> list[Sample]:
    """Every record's native sample, made once (in `workers` processes) and kept in `cache`."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    cache.mkdir(parents=True, exist_ok=True)
    tag = "-".join(classes)
    jobs = [(r, root, tuple(classes), cache / f"{r.sha256[:40]}-{len(tag)}.npz") for r in records]
    if workers > 1:
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("forkserver")) as pool:
            done = pool.map(_prepare_one, jobs, chunksize=8)
            paths = list(tqdm(done, total=len(jobs), desc=desc))
    else:
        paths = [_prepare_one(j) for j in tqdm(jobs, desc=desc)]
    out = []
    for p in paths:
        with np.load(p) as z:
            out.append(Sample(z["image"], z["bits"], z["labels"], str(z["design"])))
    return out


def cell_targets(bits: NDArray[np.uint8], k: int) -> NDArray[np.float32]:
    """(H, W) bits -> (K, H // STRIDE, W // STRIDE): 1 where any pixel of the cell has class k."""
    h, w = bits.shape[0] // STRIDE, bits.shape[1] // STRIDE
    cells = bits[: h * STRIDE, : w * STRIDE].reshape(h, STRIDE, w, STRIDE)
    any_bits = np.bitwise_or.reduce(np.bitwise_or.reduce(cells, axis=3), axis=1)  # (h, w)
    return np.stack([(any_bits >> c) & 1 for c in range(k)]).astype(np.float32)


def _window(arr: NDArray[Any], y: int, x: int, size: int) -> NDArray[Any]:
    """arr[y:y+size, x:x+size], zero-padded where it runs past the edge (y, x may be < 0)."""
    out = np.zeros((size, size, *arr.shape[2:]), arr.dtype)
    h, w = arr.shape[:2]
    y0, x0, y1, x1 = max(0, y), max(0, x), min(h, y + size), min(w, x + size)
    if y1 > y0 and x1 > x0:
        out[y0 - y : y1 - y, x0 - x : x1 - x] = arr[y0:y1, x0:x1]
    return out


class PatchSampler:
    """Random training patches: half centred near a defect pixel, half anywhere in the crop."""

    def __init__(self, samples: Sequence[Sample], k: int, patch: int, seed: int) -> None:
        if patch % STRIDE:
            raise DataError(f"patch must be a multiple of {STRIDE}, got {patch}")
        self.samples, self.k, self.patch = samples, k, patch
        self.rng = np.random.default_rng(seed)
        self.defective = [i for i, s in enumerate(samples) if s.bits.any()]

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
            s = self.samples[int(rng.integers(len(self.samples)))]
            h, w = s.bits.shape
            y, x = (
                int(rng.integers(min(0, h - p), max(1, h - p + 1))),
                int(rng.integers(min(0, w - p), max(1, w - p + 1))),
            )
        img, bits = _window(s.image, y, x, p), _window(s.bits, y, x, p)
        # Orientation carries no meaning on the mat: flips and quarter turns.
        turns = int(rng.integers(4))
        img, bits = np.rot90(img, turns), np.rot90(bits, turns)
        if rng.random() < 0.5:
            img, bits = img[:, ::-1], bits[:, ::-1]
        # Exposure and white balance drift a little between phones.
        gain = rng.uniform(0.85, 1.15) * rng.uniform(0.95, 1.05, size=3)
        img = np.clip(img.astype(np.float32) * gain, 0, 255).astype(np.uint8)
        return img, cell_targets(np.ascontiguousarray(bits), self.k)

    def batch(self, n: int) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        pairs = [self.one() for _ in range(n)]
        x = np.stack([_to_input(a) for a, _ in pairs])
        return x, np.stack([t for _, t in pairs])


def _to_input(rgb: NDArray[np.uint8]) -> NDArray[np.float32]:
    # tf_efficientnet_lite0's scaling, as in PreprocessConfig: [0, 255] -> [-1, 1].
    return np.ascontiguousarray((rgb.astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1))


def build_probe(k: int, weights: str = "imagenet", stages: int = 3) -> Any:
    """The backbone's stem and first `stages` stages (stride 8) plus a 3x3 + 1x1 head."""
    import torch
    from torch import nn

    from qc_model.network import build_model

    net: Any = build_model(num_classes=k, weights=weights).backbone
    channels = net.blocks[stages - 1][-1].conv_pwl.out_channels
    head = nn.Sequential(
        nn.Conv2d(channels, 64, 3, padding=1, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU6(inplace=True),
        nn.Conv2d(64, k, 1),
    )
    nn.init.constant_(head[-1].bias, -4.0)  # most cells hold no defect
    model = nn.Sequential(net.conv_stem, net.bn1, *list(net.blocks)[:stages], head)
    with torch.no_grad():
        stride = 224 // model(torch.zeros(1, 3, 224, 224)).shape[-1]
    if stride != STRIDE:
        raise DataError(f"{stages} stages give stride {stride}, the probe needs {STRIDE}")
    return model


def train_probe(
    model: Any,
    sampler: PatchSampler,
    steps: int,
    batch: int,
    lr: float,
    pos_weight: float,
) -> dict[str, float]:
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
    bar = tqdm(range(steps), desc="train", unit="step")
    for _ in bar:
        x, y = sampler.batch(batch)
        logits = model(torch.from_numpy(x))
        loss = F.binary_cross_entropy_with_logits(logits, torch.from_numpy(y), pos_weight=pw)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        seen += batch
        ema = loss.item() if math.isnan(ema) else 0.98 * ema + 0.02 * loss.item()
        bar.set_postfix(loss=f"{ema:.4f}", patches_s=f"{seen / (time.perf_counter() - t0):.1f}")
    wall = time.perf_counter() - t0
    return {"steps": steps, "patches": seen, "seconds": wall, "patches_per_s": seen / wall}


def photo_scores(model: Any, samples: Sequence[Sample], desc: str) -> NDArray[np.float64]:
    """(N, K): each class's highest cell probability over the whole native crop."""
    import torch

    model.eval()
    out = []
    with torch.inference_mode():
        for s in tqdm(samples, desc=desc, unit="photo"):
            h, w = s.image.shape[:2]
            hp, wp = -(-h // STRIDE) * STRIDE, -(-w // STRIDE) * STRIDE
            img = _window(s.image, 0, 0, max(hp, wp))[:hp, :wp]
            logits = model(torch.from_numpy(_to_input(img))[None])[0]
            out.append(torch.sigmoid(logits.flatten(1).amax(dim=1)).double().numpy())
    return np.stack(out)


def class_rows(
    probs: NDArray[np.float64],
    y: NDArray[np.bool_],
    designs: Sequence[str],
    classes: Sequence[str],
) -> dict[str, dict[str, float]]:
    return {
        c: {
            "positives": int(y[:, k].sum()),
            "auroc": auroc(probs[:, k], y[:, k]),
            "ap": average_precision(probs[:, k], y[:, k]),
            "within_design_auroc": stratified_auroc(probs[:, k], y[:, k], designs),
        }
        for k, c in enumerate(classes)
    }


def operating_point(
    val_p: NDArray[np.float64],
    val_y: NDArray[np.bool_],
    test_p: NDArray[np.float64],
    test_y: NDArray[np.bool_],
    classes: Sequence[str],
    target_recall: float = 0.97,
) -> dict[str, Any]:
    """Thresholds chosen on validation as `kito export` does; the targets' numbers on test."""
    choice = choose_thresholds(val_p, val_y, classes, target_recall=target_recall)
    t = [choice.thresholds[c].threshold for c in classes]
    ad = any_defect(test_p, test_y, t, classes)
    return {
        "recall_level": choice.recall_level,
        "macro_f1": macro_f1(test_p, test_y, t),
        "recall": ad.recall,
        "false_hold": ad.false_hold_rate,
        "f1": {r.name: r.f1 for r in per_class_metrics(test_p, test_y, t, classes)},
    }


def fuse(
    val: dict[str, NDArray[np.float64]], val_y: NDArray[np.bool_], classes: Sequence[str]
) -> dict[str, str]:
    """For each class, the scorer whose validation AP is higher."""
    out = {}
    for k, c in enumerate(classes):
        aps = {name: average_precision(p[:, k], val_y[:, k]) for name, p in val.items()}
        out[c] = max(aps, key=lambda n: (aps[n], n == "package"))
    return out


def operating_table(points: dict[str, dict[str, Any]], classes: Sequence[str]) -> str:
    head = "| scorer | macro-F1 | recall | false-hold | " + " | ".join(f"F1 {c}" for c in classes)
    lines = [head + " |", "|" + " --- |" * (4 + len(classes))]
    for name, pt in points.items():
        f1 = " | ".join(f"{pt['f1'][c]:.3f}" for c in classes)
        nums = f"{pt['macro_f1']:.3f} | {pt['recall']:.3f} | {pt['false_hold']:.3f}"
        lines.append(f"| {name} | {nums} | {f1} |")
    return "\n".join(lines)


def table(results: dict[str, dict[str, dict[str, float]]], classes: Sequence[str]) -> str:
    """Markdown: one row per class, AUROC / within-design AUROC / AP for each scorer."""
    names = list(results)
    head = "| class | positives | " + " | ".join(
        f"{n}: AUROC | {n}: within design | {n}: AP" for n in names
    )
    lines = [head + " |", "|" + " --- |" * (2 + 3 * len(names))]
    for c in classes:
        first = results[names[0]][c]
        cells = [
            f"{results[n][c][m]:.3f}" for n in names for m in ("auroc", "within_design_auroc", "ap")
        ]
        lines.append(f"| {c} | {first['positives']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(
    results: dict[str, dict[str, dict[str, float]]], classes: Sequence[str], out: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / len(results)
    for i, (name, rows) in enumerate(results.items()):
        vals = [rows[c]["within_design_auroc"] for c in classes]
        ax.bar(np.arange(len(classes)) + i * width, vals, width, label=name)
    ax.axhline(0.5, color="grey", lw=1, ls="--")
    ax.set_xticks(np.arange(len(classes)) + width * (len(results) - 1) / 2, classes, rotation=20)
    ax.set_ylim(0.3, 1.0)
    ax.set_ylabel("AUROC within each design")
    ax.set_title("Test set: does the score follow the defect? (0.5 = chance)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m training.surface_probe", description=__doc__)
    ap.add_argument("--train", required=True, help="PATH[:SPLIT]; default split train")
    ap.add_argument("--test", required=True, help="PATH[:SPLIT] scored once, after training")
    ap.add_argument("--package", type=Path, help="also score this package on the test photos")
    ap.add_argument(
        "--val", help="PATH[:SPLIT] for choosing thresholds and the fused scorer (needs --package)"
    )
    ap.add_argument("--load", type=Path, help="a probe.pt from an earlier run: score, do not train")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cache", type=Path, help="native crops (default: OUT/native)")
    ap.add_argument("--limit", type=int, default=0, help="use the first N training photos")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--patch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--pos-weight", type=float, default=5.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        run(args)
    except DataError as e:
        raise SystemExit(f"error: {e}") from None


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from qc_model.package import read_meta

    if args.val and not args.package:
        raise DataError("--val compares the probe with a package: give --package too")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    if args.package:
        classes = list(read_meta(args.package).classes)
    else:
        from qc_model.taxonomy import VISUAL_DEFECTS

        classes = list(VISUAL_DEFECTS)
    train_spec = args.train if ":" in args.train else f"{args.train}:train"
    sets = {"test": load_set(args.test)}
    if args.val:
        sets["val"] = load_set(args.val)
    args.out.mkdir(parents=True, exist_ok=True)
    cache = args.cache or args.out / "native"
    model = build_probe(len(classes))
    timing: dict[str, float] = {}
    n_train = 0
    if args.load:
        if not args.load.is_file():
            raise DataError(f"--load {args.load}: no such file")
        model.load_state_dict(torch.load(args.load, map_location="cpu", weights_only=True))
    else:
        train_records, train_root = load_set(train_spec)
        if args.limit:
            train_records = train_records[: args.limit]
        train = prepare(
            train_records, train_root, classes, cache, args.workers, "native crops (train)"
        )
        n_train = len(train)
        sampler = PatchSampler(train, len(classes), args.patch, args.seed)
        timing = train_probe(model, sampler, args.steps, args.batch, args.lr, args.pos_weight)
        del train, sampler
        torch.save(model.state_dict(), args.out / "probe.pt")
    scores: dict[str, dict[str, NDArray[np.float64]]] = {}
    truth: dict[str, NDArray[np.bool_]] = {}
    designs: dict[str, list[str]] = {}
    for name, (records, root) in sets.items():
        samples = prepare(records, root, classes, cache, args.workers, f"native crops ({name})")
        scores[name] = {"probe": photo_scores(model, samples, f"score {name}")}
        if args.package:
            from training.compare import score_package

            scores[name]["package"] = score_package(args.package, records, root, classes).probs
        truth[name] = np.stack([s.labels for s in samples])
        designs[name] = [s.design for s in samples]
        del samples
    results = {
        n: class_rows(p, truth["test"], designs["test"], classes) for n, p in scores["test"].items()
    }
    md = table(results, classes)
    report: dict[str, Any] = {
        "classes": classes,
        "train": {"spec": train_spec, "photos": n_train, "loaded": str(args.load or "")},
        "sets": {n: {"photos": len(truth[n])} for n in sets},
        "settings": {k: str(v) for k, v in vars(args).items() if k not in ("out", "cache")},
        "timing": timing,
        "results": results,
    }
    if args.val:
        source = fuse(scores["val"], truth["val"], classes)
        fused = {
            n: np.stack([scores[n][source[c]][:, k] for k, c in enumerate(classes)], axis=1)
            for n in ("val", "test")
        }
        points = {
            name: operating_point(
                scores["val"][name], truth["val"], scores["test"][name], truth["test"], classes
            )
            for name in scores["test"]
        }
        points["fused"] = operating_point(
            fused["val"], truth["val"], fused["test"], truth["test"], classes
        )
        report["fused_source"] = source
        report["operating_points"] = points
        md += "\n\nFused: each class from " + ", ".join(f"{c}: {n}" for c, n in source.items())
        md += "\n\n" + operating_table(points, classes)
    print(md)
    # Per-photo scores, for combining the scorers in other ways than taking the better one.
    np.savez(
        args.out / "scores.npz",
        **{f"{n}_{scorer}": p for n, by in scores.items() for scorer, p in by.items()},
        **{f"{n}_truth": y for n, y in truth.items()},
        **{f"{n}_design": np.array(d) for n, d in designs.items()},
    )
    (args.out / "results.md").write_text(md + "\n")
    (args.out / "results.json").write_text(json.dumps(report, indent=2, default=str))
    plot(results, classes, args.out / "within_design_auroc.png")
    return report


if __name__ == "__main__":
    main()
