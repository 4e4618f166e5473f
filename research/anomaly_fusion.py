"""Classifier + anomaly model: is there a fused operating point that holds fewer good pieces
than the classifier alone at the same recall? Chosen on val, scored on test, judged photos.

    python -m research.anomaly_fusion --package PKG --val VAL_MANIFEST:SPLIT \
        --test-eval REPORT --test TEST_MANIFEST [--visible VISIBLE_MANIFEST] [--target-recall 0.97]

REPORT is a `kito eval --package PKG` folder of the test photos (its anomaly_scores.npz holds
each photo's anomaly level, classifier probabilities and gate flag). The val photos are scored
here the same way. Both decisions are one-parameter families on the judged photos a bank covers:
the classifier holds when max over classes of logit(p) - logit(threshold) >= d (d = 0: the
package's thresholds); fused holds when that or the anomaly level >= L. On val, each family's
(d, L) with recall >= the target and the fewest good photos held is chosen; the test photos
then give recall and false-hold for both, and the classifier alone at the fused recall.
`--visible`: the test labels of `kito data visible` (photos left with no visible label dropped).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from qc_model.manifest import Manifest


def margin(probs: NDArray, thresholds: NDArray) -> NDArray[np.float64]:
    """(N,) how far the most-over-threshold class is above its threshold, in logits."""
    p = np.clip(np.asarray(probs, np.float64), 1e-7, 1 - 1e-7)
    t = np.clip(np.asarray(thresholds, np.float64), 1e-7, 1 - 1e-7)
    return (np.log(p / (1 - p)) - np.log(t / (1 - t))).max(axis=1)


def rates(held: NDArray[np.bool_], bad: NDArray[np.bool_]) -> tuple[float, float]:
    return float(held[bad].mean()), float(held[~bad].mean())


def choose(
    m: NDArray, lv: NDArray, bad: NDArray[np.bool_], target: float, fused: bool
) -> tuple[float, float]:
    """(d, L) with recall >= target and the lowest false-hold (L = 2: no anomaly)."""
    ds = np.unique(np.r_[m[bad], 0.0])
    ls = np.unique(np.r_[lv[bad], 2.0]) if fused else np.array([2.0])
    best: tuple[float, float, float] = (2.0, -np.inf, 2.0)
    for L in ls:
        for d in ds:
            held = (m >= d) | (lv >= L)
            r, f = rates(held, bad)
            if r >= target and f < best[0]:
                best = (f, d, L)
    return best[1], best[2]


def scored_val(package: Path, manifest: Path, split: str) -> tuple[NDArray, NDArray, NDArray]:
    from qc_model.anomaly import AnomalyModel
    from qc_model.package import read_meta
    from training.anomaly.evaluate import anomaly_levels
    from training.compare import score_package
    from training.dataset import for_classes, resolve_root
    from training.judged import gate_passed

    meta = read_meta(package)
    m = for_classes(Manifest.read(manifest), meta.classes, manifest)
    root = resolve_root(manifest, None)
    model = AnomalyModel(package, threads=2)
    records = [r for r in m.split(split) if model.covers(r.design_id)]
    passed = gate_passed(records, root, 2, "gate (val)")
    records = [r for r, ok in zip(records, passed, strict=True) if ok]
    s = score_package(package, records, root, list(meta.classes), "val photos")
    levels, _ = anomaly_levels(model, records, root, "anomaly (val)")
    bad = np.array([bool(r.labels) for r in records])
    return margin(s.probs, np.asarray(s.thresholds)), levels, bad


def scored_test(report: Path, manifest: Path) -> tuple[NDArray, NDArray, NDArray]:
    with np.load(report / "anomaly_scores.npz") as z:
        ids, levels, probs, thr, classes, passed = (
            z["ids"], z["levels"], z["probs"], z["thresholds"], z["classes"], z["passed"]
        )  # fmt: skip
    labels = {r.id: set(r.labels) & set(classes.tolist()) for r in Manifest.read(manifest).records}
    keep = passed & ~np.isnan(levels) & np.array([i in labels for i in ids])
    bad = np.array([bool(labels[i]) for i in ids[keep]])
    return margin(probs[keep], thr), levels[keep], bad


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--package", type=Path, required=True)
    ap.add_argument("--val", required=True, help="MANIFEST:SPLIT")
    ap.add_argument("--test-eval", type=Path, required=True)
    ap.add_argument("--test", type=Path, required=True)
    ap.add_argument("--visible", type=Path, default=None)
    ap.add_argument("--target-recall", type=float, default=0.97)
    args = ap.parse_args(argv)
    path, _, split = args.val.rpartition(":")
    vm, vl, vbad = scored_val(args.package, Path(path), split or "val")
    print(f"val: {len(vbad)} judged photos ({int(vbad.sum())} defective)")
    plans = {
        "classifier": choose(vm, vl, vbad, args.target_recall, fused=False),
        "fused": choose(vm, vl, vbad, args.target_recall, fused=True),
    }
    sets = [("test, all labels", args.test)] + (
        [("test, visible", args.visible)] if args.visible else []
    )
    for name, manifest in sets:
        tm, tl, tbad = scored_test(args.test_eval, manifest)
        print(f"{name}: {len(tbad)} judged photos ({int(tbad.sum())} defective)")
        r, f = rates(tm >= 0.0, tbad)
        print(f"  classifier at the package's thresholds: recall {r:.3f}, false-hold {f:.3f}")
        for plan, (d, L) in plans.items():
            vr, vf = rates((vm >= d) | (vl >= L), vbad)
            r, f = rates((tm >= d) | (tl >= L), tbad)
            lvl = "none" if L > 1 else f"{L:.4f}"
            print(
                f"  {plan} chosen on val (d {d:+.3f}, level {lvl}; val recall {vr:.3f}, "
                f"false-hold {vf:.3f}): test recall {r:.3f}, false-hold {f:.3f}"
            )
        d, L = plans["fused"]
        fr = rates((tm >= d) | (tl >= L), tbad)[0]
        ds = np.unique(tm[tbad])
        ok = [dd for dd in ds if rates(tm >= dd, tbad)[0] >= fr]
        if ok:
            cr, cf = rates(tm >= max(ok), tbad)
            print(f"  classifier alone at the fused test recall ({cr:.3f}): false-hold {cf:.3f}")


if __name__ == "__main__":
    main()
