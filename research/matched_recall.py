"""Two or more packages' decisions on the same judged photos at the same recalls.

Each package's own operating point is chosen on val, so two packages land at different recalls
on test and their false-hold rates cannot be compared directly. This reads the per-photo scores
`kito eval --package` keeps (`anomaly_scores.npz`) for each package and, at each recall asked
for, the false-hold of the classifier's margin alone and of the fused score (margin + the
package's weight x centred anomaly score), each threshold read off these photos (an oracle
operating point, the same for every package), plus each package's shipped rule as it decides.

    python -m research.matched_recall --manifest data/eval-s2k-s28.jsonl \
        --run models/default REPORT_A/anomaly_scores.npz --run PKG_B REPORT_B/anomaly_scores.npz
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from qc_model.anomaly import AnomalyModel
from qc_model.manifest import Manifest
from training.anomaly.fused import classifier_scores, false_hold_at_recall, held_fused

RECALLS = (0.96, 0.97, 0.976, 0.98, 0.984, 0.988)


def curve(
    score: NDArray[np.float64], bad: NDArray[np.bool_], recalls: tuple[float, ...]
) -> list[float]:
    """False-hold of `score` at each recall (thresholds read off these photos)."""
    return [false_hold_at_recall(score, bad, r)[1] for r in recalls]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", type=Path, required=True, help="the manifest evaluated")
    ap.add_argument(
        "--run", nargs=2, action="append", required=True, metavar=("PACKAGE", "SCORES"),
        help="a package and the anomaly_scores.npz of its kito eval",
    )  # fmt: skip
    ap.add_argument("--recalls", type=float, nargs="+", default=list(RECALLS))
    ap.add_argument(
        "--bootstrap", type=int, default=0,
        help="with two runs: resample the judged photos N times, the second run's fused "
        "false-hold less the first's at each recall (paired), with its 95 %% interval",
    )  # fmt: skip
    a = ap.parse_args(argv)
    if a.bootstrap and len(a.run) != 2:
        ap.error("--bootstrap compares exactly two runs")
    records = {r.id: r for r in Manifest.read(a.manifest).records}
    recalls = tuple(a.recalls)
    head = " | ".join(f"{r:.3f}" for r in recalls)
    print(f"| package | score | judged (bad) | rule: recall / false-hold | FH at recall {head} |")
    print("| --- | --- | ---: | ---: |" + " ---: |" * len(recalls))
    fused_of: dict[str, dict[str, tuple[bool, float]]] = {}  # run -> photo id -> (bad, score)
    for pkg, scores in a.run:
        rule = AnomalyModel(Path(pkg), threads=1).meta.fused
        if rule is None:
            raise SystemExit(f"{pkg}: no fused rule (kito anomaly thresholds --fused)")
        z = np.load(scores)
        classes = [str(c) for c in z["classes"]]
        cs = classifier_scores(Path(pkg), z["probs"], classes)
        defects = set(classes)
        judged = z["passed"].astype(bool) & ~np.isnan(z["centred"])
        rows = np.flatnonzero(judged)
        bad = np.array([bool(set(records[str(z["ids"][i])].labels) & defects) for i in rows])
        c, centred, levels = cs.subset(rows), z["centred"][rows], z["levels"][rows]
        held = held_fused(c, centred, rule.weight, rule.threshold, levels, rule.guard)
        shipped = f"{held[bad].mean():.3f} / {held[~bad].mean():.3f}"
        big = np.inf
        for name, score in (
            ("margin", np.where(c.fails, big, c.margin)),
            (
                f"fused (w {rule.weight:g})",
                np.where(c.fails, big, c.margin + rule.weight * centred),
            ),
        ):
            fh = " | ".join(f"{v:.3f}" for v in curve(score, bad, recalls))
            print(f"| {Path(pkg).name} | {name} | {len(rows)} ({bad.sum()}) | {shipped} | {fh} |")
        ids = [str(z["ids"][i]) for i in rows]
        fused = np.where(c.fails, big, c.margin + rule.weight * centred)
        fused_of[pkg] = {i: (bool(b), float(v)) for i, b, v in zip(ids, bad, fused, strict=True)}
    if a.bootstrap:
        first, second = (fused_of[pkg] for pkg, _ in a.run)
        diffs = paired_bootstrap(first, second, recalls, a.bootstrap)
        print(
            f"\n{a.run[1][0]} less {a.run[0][0]}, fused false-hold, {a.bootstrap} resamples of "
            f"the {len(set(first) & set(second))} photos both judged:"
        )
        print("| recall | difference | 95 % interval |\n| --- | ---: | --- |")
        for r, d in zip(recalls, diffs.T, strict=True):
            lo, hi = np.percentile(d, [2.5, 97.5])
            print(f"| {r:.3f} | {np.mean(d):+.3f} | {lo:+.3f} to {hi:+.3f} |")


def paired_bootstrap(
    first: dict[str, tuple[bool, float]],
    second: dict[str, tuple[bool, float]],
    recalls: tuple[float, ...],
    resamples: int,
    seed: int = 0,
) -> np.ndarray:
    """(resamples, len(recalls)): second's false-hold less first's at each recall, on the same
    resampled photos each time (thresholds read off each resample)."""
    ids = sorted(set(first) & set(second))
    bad = np.array([first[i][0] for i in ids])
    a = np.array([first[i][1] for i in ids])
    b = np.array([second[i][1] for i in ids])
    rng = np.random.default_rng(seed)
    out = np.empty((resamples, len(recalls)))
    for n in range(resamples):
        pick = rng.integers(0, len(ids), len(ids))
        out[n] = np.subtract(curve(b[pick], bad[pick], recalls), curve(a[pick], bad[pick], recalls))
    return out


if __name__ == "__main__":
    main()
