"""Thresholds chosen on the judged val photos against the package's own, on all and on the
judged test photos; and the judged scores the other studies share (research.threshold_probe,
research.ceiling).

    python -m research.judged_study models/default --val data/trainval-s1s3-2k.jsonl:val \\
        --test data/test-s2-2k --workers 2
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from qc_model.errors import DataError
from qc_model.manifest import Record
from qc_model.package import read_meta
from training.calibrate import choose_thresholds
from training.evaluate import package_probs
from training.judged import gate_passed
from training.metrics import any_defect, macro_f1
from training.score_packages import records_at

# Photos of a data set and the folder their image paths are relative to (records_at).
Photos = tuple[list[Record], Path]


@dataclass(frozen=True)
class JudgedScores:
    """A package's probabilities, labels and gate flags on a val and a test set."""

    classes: list[str]
    target_recall: float
    thresholds: list[float]  # the package's own hold thresholds
    val: tuple[NDArray[np.float64], NDArray[np.bool_], NDArray[np.bool_]]  # probs, y, judged
    test: tuple[NDArray[np.float64], NDArray[np.bool_], NDArray[np.bool_]]


def judged_scores(package: Path, val: Photos, test: Photos, workers: int) -> JudgedScores:
    """Score `val` and `test` with `package` as the service does, and run the photo gate on
    both (a DataError when it passes no val photo)."""

    meta = read_meta(package)
    classes = list(meta.classes)
    (vr, vroot), (tr, troot) = val, test
    pv, pt = (package_probs(package, r, root, classes, n) for r, root, n in
              ((vr, vroot, "val photos"), (tr, troot, "test photos")))  # fmt: skip
    gv = gate_passed(vr, vroot, workers, "photo gate (val)")
    gt = gate_passed(tr, troot, workers, "photo gate (test)")
    if not gv.any():
        raise DataError(f"the photo gate passes none of the {len(vr)} val photos")
    yv = np.array([[c in r.labels for c in classes] for r in vr], dtype=bool)
    yt = np.array([[c in r.labels for c in classes] for r in tr], dtype=bool)
    return JudgedScores(
        classes=classes,
        target_recall=float(meta.metrics.get("target_recall") or 0.97),
        thresholds=[meta.thresholds[c].threshold for c in classes],
        val=(pv, yv, gv),
        test=(pt, yt, gt),
    )


def threshold_study(
    package: Path, val: Photos, test: Photos, workers: int
) -> list[dict[str, object]]:
    """A package's any-defect operating point with its own thresholds and with thresholds
    chosen again on the judged val photos, on all and on the judged test photos."""

    s = judged_scores(package, val, test, workers)
    classes = s.classes
    (pv, yv, gv), (pt, yt, gt) = s.val, s.test
    refit = choose_thresholds(pv[gv], yv[gv], classes, target_recall=s.target_recall)
    judged = [refit.thresholds[c].threshold for c in classes]
    rows: list[dict[str, object]] = []
    for source, t in (("the package's", s.thresholds), ("judged val photos", judged)):
        for scored, mask in (("all test photos", np.ones(len(pt), bool)), ("judged", gt)):
            ad = any_defect(pt[mask], yt[mask], t, classes)
            rows.append({
                "thresholds": source, "scored": scored, "photos": int(mask.sum()),
                "macro_f1": macro_f1(pt[mask], yt[mask], t), "recall": ad.recall,
                "false_hold": ad.false_hold_rate,
            })  # fmt: skip
    return rows


def study_inputs(argv: list[str] | None, usage: str | None) -> tuple[Path, Photos, Photos, int]:
    """`PACKAGE --val PATH[:SPLIT] --test PATH[:SPLIT] [--workers N]`, the arguments of the
    studies that fit on judged val photos and score judged test photos: (package, val photos,
    test photos, workers); a DataError names a missing manifest or an empty split."""

    p = argparse.ArgumentParser(description=usage)
    p.add_argument("package", type=Path)
    p.add_argument("--val", required=True, help="PATH[:SPLIT] whose judged photos fit")
    p.add_argument("--test", required=True, help="PATH[:SPLIT] whose judged photos score")
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args(argv)
    return args.package, records_at(args.val), records_at(args.test), args.workers


def main(argv: list[str] | None = None) -> None:
    """python -m research.judged_study PACKAGE --val DATA:val --test DATA [--workers 2]"""
    rows = threshold_study(*study_inputs(argv, main.__doc__))
    print("| thresholds from | scored on | photos | macro-F1 | recall | false-hold |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['thresholds']} | {r['scored']} | {r['photos']} | {r['macro_f1']:.3f} | "
              f"{r['recall']:.3f} | {r['false_hold']:.3f} |")  # fmt: skip


if __name__ == "__main__":
    main()
