"""How far a package's scores can go by thresholds alone: the targets' ceiling on a test set.

The accuracy targets (macro-F1 >= 0.90; any-defect recall >= 0.97 at false-hold <= 10 %) are
read at operating thresholds. Before another search over thresholds, fusions or offsets, this
asks what the scores themselves allow, with thresholds fitted on the test photos' own labels,
which no chooser fitted on validation photos can beat:

- **Macro-F1 ceiling.** A class's F1 at any threshold is at most its best F1 over every
  threshold on these photos, so the mean of those best values bounds macro-F1 from above for
  every threshold choice, the package's included (`training.metrics.macro_f1_ceiling`, which
  `kito eval` reports too). This is a bound, not an estimate.
- **False-hold at the target recall, fitted on test.** The union of per-class thresholds is
  fitted on the judged test photos themselves, both with the package's chooser (one common
  per-class recall level) and with the greedy per-class search of `research.threshold_probe`.
  These are the lowest false-hold rates found, not proven minima (a union of seven thresholds
  has no cheap exact optimum), so they read as "what even an oracle chooser of this kind gets".
- **Which class holds the good pieces.** The same fits, with one class's scores replaced
  by its labels (that class scored perfectly, the others as they are), then with every class
  but one perfect (`perfect_classes`): how far the false-hold would fall if that class alone
  were solved, and what that class alone costs when every other one is.

    python -m research.ceiling models/default --val data/val-s3-2k-val.jsonl:val \\
        --test data/test-s2-2k --workers 2 [--save scores.npz]
    python -m research.ceiling --scores scores.npz      # the same tables, without scoring again

The val photos are scored too (the package's thresholds were chosen on such photos and the
table shows both), but nothing is fitted on them here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray


def ceiling(
    probs: NDArray[np.floating],
    y: NDArray[np.bool_],
    classes: Sequence[str],
    thresholds: Sequence[float],
    target_recall: float,
) -> dict[str, object]:
    """Per class the F1 at `thresholds` and the best F1 over all thresholds; macro-F1 at
    `thresholds` and its ceiling (mean of the best F1s over the classes present); the
    any-defect operating point at `thresholds` and with thresholds fitted on these photos
    (the common recall level and the greedy search) at `target_recall`."""
    from research.threshold_probe import common_level, greedy_thresholds
    from training.metrics import (
        any_defect,
        average_precision,
        macro_f1,
        macro_f1_ceiling,
        per_class_metrics,
    )

    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y, dtype=bool)
    at = per_class_metrics(p, y, list(thresholds), list(classes))
    best, bound = macro_f1_ceiling(p, y)
    rows = []
    for k, (name, b) in enumerate(zip(classes, best, strict=True)):
        rows.append({
            "class": name,
            "support": int(y[:, k].sum()),
            "ap": average_precision(p[:, k], y[:, k]),
            "f1": at[k].f1,
            "best_f1": b.f1,
            "best_precision": b.precision,
            "best_recall": b.recall,
        })  # fmt: skip
    points = {}
    fitted = {
        "package thresholds": list(thresholds),
        "common level fitted on these photos": common_level(classes)(p, y, target_recall),
        "greedy search fitted on these photos": greedy_thresholds(p, y, target_recall),
    }
    for name, th in fitted.items():
        ad = any_defect(p, y, th, classes)
        points[name] = {
            "recall": ad.recall,
            "false_hold": ad.false_hold_rate,
            "macro_f1": macro_f1(p, y, th),
        }
    base = [fitted[k] for k in fitted if k != "package thresholds"]
    for k, row in enumerate(rows):
        rest = [j for j in range(len(classes)) if j != k]
        for key, solved in (("false_hold_if_solved", [k]), ("false_hold_if_only_unsolved", rest)):
            row[key] = _fitted_false_hold(p, y, classes, target_recall, solved, base)
    return {
        "classes": rows,
        "macro_f1": macro_f1(p, y, list(thresholds)),
        "macro_f1_ceiling": bound,
        "operating_points": points,
    }


def perfect_classes(
    probs: NDArray[np.floating], y: NDArray[np.bool_], columns: Sequence[int]
) -> NDArray[np.float64]:
    """`probs` with the given columns replaced by their labels (1.0 or 0.0): those classes
    scored perfectly, the others as they are."""
    p = np.array(probs, dtype=np.float64)
    for k in columns:
        p[:, k] = np.asarray(y, dtype=bool)[:, k]
    return p


def _fitted_false_hold(
    p: NDArray[np.float64],
    y: NDArray[np.bool_],
    classes: Sequence[str],
    target: float,
    solved: Sequence[int],
    fitted: Sequence[Sequence[float]],
) -> float:
    """The lowest false-hold found at `target` recall with the `solved` columns scored
    perfectly: both choosers fitted again, and each of the `fitted` threshold sets (fitted on
    the scores as they are) with the solved classes holding exactly their positives, of those
    that still reach the target. (A perfect score also stops holding the photos of other
    classes that the imperfect one held by chance, so solving a class can read worse.)"""
    from research.threshold_probe import common_level, greedy_thresholds
    from training.metrics import any_defect

    q = perfect_classes(p, y, solved)
    candidates = [choose(q, y, target) for choose in (common_level(classes), greedy_thresholds)]
    candidates += [[1.0 if k in solved else t for k, t in enumerate(th)] for th in fitted]
    points = [any_defect(q, y, th, classes) for th in candidates]
    return min((a.false_hold_rate for a in points if a.recall >= target - 1e-12), default=math.nan)


def _report(
    name: str, p: NDArray, y: NDArray, classes: list[str], thresholds: list[float], target: float
) -> None:
    c = ceiling(p, y, classes, thresholds, target)
    print(f"\n## judged {name} photos: {len(p)} ({int(y.any(axis=1).sum())} defective)")
    print("| class | photos with it | AP | F1 at the package's threshold | best F1 (any threshold) "
          "| its precision / recall | fitted false-hold, this class solved "
          "| fitted false-hold, only this class unsolved |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |")
    for r in c["classes"]:
        print(f"| {r['class']} | {r['support']} | {r['ap']:.3f} | {r['f1']:.3f} | "
              f"{r['best_f1']:.3f} | {r['best_precision']:.3f} / {r['best_recall']:.3f} | "
              f"{r['false_hold_if_solved']:.3f} | "
              f"{r['false_hold_if_only_unsolved']:.3f} |")  # fmt: skip
    print(
        f"\nmacro-F1 at the package's thresholds {c['macro_f1']:.3f}; "
        f"ceiling over all thresholds {c['macro_f1_ceiling']:.3f}"
    )
    print(f"\n| thresholds (target recall {target}) | recall | false-hold | macro-F1 |")
    print("| --- | ---: | ---: | ---: |")
    for point, pt in c["operating_points"].items():
        print(f"| {point} | {pt['recall']:.3f} | {pt['false_hold']:.3f} | "
              f"{pt['macro_f1']:.3f} |")  # fmt: skip


def plot(c: dict[str, Any], target: float, title: str, out: Path) -> None:
    """Two panels: per class the F1 at the package's thresholds against the best over every
    threshold (macro-F1 target line); the false-hold at `target` recall with the package's
    thresholds, fitted on the photos, and with only one class left as it is (10 % line)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = c["classes"]
    names = [r["class"] for r in rows]
    x = np.arange(len(rows))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(13, 4.6), width_ratios=(1.1, 1))
    a1.bar(x - 0.2, [r["f1"] for r in rows], 0.4, label="at the package's thresholds")
    a1.bar(x + 0.2, [r["best_f1"] for r in rows], 0.4, label="best over every threshold")
    a1.axhline(0.9, color="crimson", ls="--", lw=1.2, label="macro-F1 target 0.90")
    a1.set_xticks(x, names, rotation=20)
    a1.set_ylim(0, 1.3)
    a1.set_ylabel("F1")
    a1.set_title(
        f"macro-F1 {c['macro_f1']:.3f}; ceiling {c['macro_f1_ceiling']:.3f} (mean of the best)"
    )
    a1.legend(loc="upper center", ncol=3, fontsize=8)
    points = c["operating_points"]
    labels = ["package", "common level\nfitted here", "greedy\nfitted here"]
    values = [points[k]["false_hold"] for k in points]
    labels += [f"only {n}\nunsolved" for n in names]
    values += [r["false_hold_if_only_unsolved"] for r in rows]
    colours = ["#4c72b0"] * 3 + ["#dd8452"] * len(rows)
    a2.bar(np.arange(len(values)), values, color=colours)
    a2.axhline(0.10, color="crimson", ls="--", lw=1.2, label="false-hold target 10 %")
    a2.set_xticks(np.arange(len(values)), labels, rotation=60, fontsize=7)
    a2.set_ylim(0, 1)
    a2.set_ylabel(f"good photos held at {target:.0%} recall")
    a2.set_title("false-hold: the package, oracle fits, one class left unsolved")
    a2.legend(loc="upper right", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    """python -m research.ceiling PACKAGE --val DATA[:SPLIT] --test DATA[:SPLIT] [--workers N]
    [--save FILE.npz] [--plot FILE.png], or python -m research.ceiling --scores FILE.npz"""
    import argparse

    from qc_model.errors import DataError
    from research.judged_study import judged_scores
    from training.score_packages import records_at

    ap = argparse.ArgumentParser(prog="python -m research.ceiling", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("package", type=Path, nargs="?", help="the package to score")
    ap.add_argument("--val", help="PATH[:SPLIT]: judged val photos (scored, nothing fitted)")
    ap.add_argument("--test", help="PATH[:SPLIT]: judged test photos")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--save", type=Path, help="keep the scores here (.npz) for --scores")
    ap.add_argument("--scores", type=Path, help="the tables from scores kept by --save")
    ap.add_argument("--plot", type=Path, help="a PNG of the test photos' tables")
    args = ap.parse_args(argv)
    if args.scores is not None:
        if args.package or args.val or args.test or args.save:
            ap.error("--scores takes no package, --val, --test or --save")
        try:
            z = np.load(args.scores, allow_pickle=False)
            sets = {n: (z[f"{n}_probs"], z[f"{n}_y"], z[f"{n}_judged"]) for n in ("val", "test")}
            classes = [str(c) for c in z["classes"]]
            thresholds = [float(t) for t in z["thresholds"]]
            target = float(z["target_recall"])
            name = str(z["package"]) if "package" in z else args.scores.stem
        except (OSError, KeyError, ValueError) as exc:
            raise SystemExit(f"error: {args.scores}: not scores saved by --save ({exc})") from None
    else:
        if not (args.package and args.val and args.test):
            ap.error("give PACKAGE --val DATA --test DATA, or --scores FILE")
        try:
            s = judged_scores(args.package, records_at(args.val), records_at(args.test),
                              args.workers)  # fmt: skip
        except DataError as exc:
            raise SystemExit(f"error: {exc}") from None
        sets = {"val": s.val, "test": s.test}
        classes, thresholds, target = s.classes, s.thresholds, s.target_recall
        from qc_model.package import read_meta

        name = read_meta(args.package).version
        if args.save:
            np.savez(args.save, classes=np.array(classes), thresholds=np.array(thresholds),
                     target_recall=target, package=name,
                     **{f"{n}_{k}": v for n, t in sets.items()
                        for k, v in zip(("probs", "y", "judged"), t, strict=True)})  # fmt: skip
    for set_name, (p, y, g) in sets.items():
        if not np.asarray(y)[g].any():
            raise SystemExit(f"error: no judged {set_name} photo has a defect")
        _report(set_name, p[g], y[g], classes, thresholds, target)
    if args.plot:
        p, y, g = sets["test"]
        c = ceiling(p[g], y[g], classes, thresholds, target)
        plot(c, target, f"{name}: judged test photos ({int(g.sum())})", args.plot)
        print(f"\nwrote {args.plot}")


if __name__ == "__main__":
    main()
