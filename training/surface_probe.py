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
look like with the probe attached to the package: the fusion `kito surface attach` fits on
validation (training.surface.choose_fusion), thresholds chosen there exactly as `kito export`
chooses them (joint, for 0.97 any-defect recall), then macro-F1, recall and false-hold on the
test photos. It is a measurement, not a model package.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from qc_model.errors import DataError
from qc_model.surface import SurfaceConfig
from training.calibrate import choose_thresholds
from training.metrics import (
    any_defect,
    auroc,
    average_precision,
    macro_f1,
    per_class_metrics,
    stratified_auroc,
)
from training.score_packages import records_at
from training.surface import (
    PatchSampler,
    branch_logits,
    build_surface_net,
    choose_fusion,
    fused_probs,
    prepare,
    train_steps,
)


def _sigmoid(z: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -60, 60))), np.float64)


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
    ap.add_argument(
        "--load", type=Path, help="a surface.pt from an earlier run: score it, do not train"
    )
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cache", type=Path, help="prepared crops (default: OUT/samples)")
    ap.add_argument(
        "--px-per-mm", type=float, help="resample crops to this scale (default: as photographed)"
    )
    ap.add_argument("--limit", type=int, default=0, help="use the first N training photos")
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--patch", type=int, default=96)
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
    from training.surface import load_surface, save_surface

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
    sets = {"test": records_at(args.test)}
    if args.val:
        sets["val"] = records_at(args.val)
    args.out.mkdir(parents=True, exist_ok=True)
    cache = args.cache or args.out / "samples"
    timing: dict[str, float] = {}
    n_train = 0
    if args.load:
        model, loaded_classes, cfg, _ = load_surface(args.load)
        if loaded_classes != classes:
            raise DataError(f"--load {args.load}: scores {loaded_classes}, expected {classes}")
    else:
        cfg = SurfaceConfig(px_per_mm=args.px_per_mm, tile=args.patch)
        model = build_surface_net(len(classes))
        train_records, train_root = records_at(train_spec)
        if args.limit:
            train_records = train_records[: args.limit]
        train = prepare(
            train_records, train_root, classes, cfg, cache, args.workers, "surface crops (train)"
        )
        n_train = len(train)
        sampler = PatchSampler(train, len(classes), args.patch, args.seed, cfg.stride)
        timing = train_steps(model, sampler, args.steps, args.batch, args.lr, args.pos_weight)
        del train, sampler
        info = {"train": train_spec, "photos": n_train, "timing": timing}
        save_surface(args.out / "surface.pt", model, classes, cfg, info)
    scores: dict[str, dict[str, NDArray[np.float64]]] = {}
    truth: dict[str, NDArray[np.bool_]] = {}
    designs: dict[str, list[str]] = {}
    for name, (records, root) in sets.items():
        samples = prepare(records, root, classes, cfg, cache, args.workers, f"crops ({name})")
        scores[name] = {"probe": branch_logits(model, samples, cfg, f"score {name}")}
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
        val, test = scores["val"], scores["test"]
        fusion, fit = choose_fusion(val["package"], val["probe"], truth["val"], classes, classes)
        fused = {
            n: fused_probs(scores[n]["package"], scores[n]["probe"], classes, classes, fusion)
            for n in ("val", "test")
        }
        # Thresholds are probabilities: the probe's max-cell logits go through a sigmoid.
        prob = {n: _sigmoid if n == "probe" else np.asarray for n in test}
        points = {
            name: operating_point(
                prob[name](val[name]), truth["val"], prob[name](test[name]), truth["test"], classes
            )
            for name in test
        }
        points["fused"] = operating_point(
            fused["val"], truth["val"], fused["test"], truth["test"], classes
        )
        results["fused"] = class_rows(fused["test"], truth["test"], designs["test"], classes)
        md = table(results, classes)
        report["fusion"] = {c: f.model_dump() for c, f in fusion.items()}
        report["fusion_fit"] = fit
        report["operating_points"] = points
        md += "\n\nFused (package + probe, logistic on val) for: " + (", ".join(fusion) or "none")
        md += "\n\n" + operating_table(points, classes)
    print(md)
    # Per-photo scores, for combining the scorers in other ways.
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
