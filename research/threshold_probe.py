"""Why the operating thresholds share one per-class recall level: a search per class overfits.

`training.calibrate.choose_thresholds` has one free parameter: a common per-class recall
level r, the one whose any-defect union reaches the target recall on the judged validation
photos with the fewest good photos held. A search over each class's threshold separately
(`greedy_thresholds`) can only hold fewer good validation photos at the same recall, since
it has seven parameters to fit instead of one. This probe asks whether that gain survives on
held-out photos: it fits both on the judged val photos at several target recalls and scores
both on the judged test photos, and on the val photos alone by 5-fold cross-validation
(`cross_validated`). The test set holds ~500 defective photos, so its recall moves by about a
point from one draw to the next; the folds give a second, independent reading.

    python -m research.threshold_probe models/default --val data/val-s3-2k --test data/test-s2-2k \\
        --workers 2

The greedy search starts with no class holding anything and, step by step, lowers the one
class threshold that holds the most defective photos not yet held per good photo newly held
(`smoothing` is added to the good count, so a step that catches many defects at the cost of a
few good photos beats one that catches one for free). When the union reaches the target, a
cleanup pass raises each threshold as far as the union recall allows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

TARGETS = (0.97, 0.975, 0.98, 0.985, 0.99, 0.995)


def greedy_thresholds(
    probs: NDArray[np.floating],
    y: NDArray[np.bool_],
    target_recall: float,
    smoothing: float = 10.0,
) -> list[float]:
    """One hold threshold per class (1.0 where a class is never needed) whose union holds at
    least `target_recall` of the photos with any positive label, chosen greedily (module doc)."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y, dtype=bool)
    truth = y.any(axis=1)
    if not truth.any():
        raise ValueError("no photo has a positive label")
    need = max(1, math.ceil(target_recall * int(truth.sum()) - 1e-9))
    t = [math.inf] * p.shape[1]
    held = np.zeros(len(p), bool)
    while int((held & truth).sum()) < need:
        best: tuple[tuple[float, int], int, float] | None = None
        for k in range(p.shape[1]):
            idx = np.flatnonzero(~held & (p[:, k] < t[k]))
            if idx.size == 0:
                continue
            order = idx[np.argsort(-p[idx, k], kind="stable")]
            vals = p[order, k]
            caught = np.cumsum(truth[order])
            cost = np.cumsum(~truth[order])
            # A threshold holds every photo scoring at least as high: cut only between
            # distinct scores, and only just after a defective photo.
            cut = np.r_[vals[:-1] > vals[1:], True] & truth[order]
            if not cut.any():
                continue
            ratio = np.where(cut, caught / (cost + smoothing), -1.0)
            j = int(np.argmax(ratio))
            key = (float(ratio[j]), int(caught[j]))
            if best is None or key > best[0]:
                best = (key, k, float(vals[j]))
        if best is None:  # cannot happen while a defective photo is not held
            break
        _, k, v = best
        t[k] = v
        held |= p[:, k] >= v
    _raise_redundant(p, truth, t, need)
    return [min(v, 1.0) for v in t]


def _raise_redundant(
    p: NDArray[np.float64], truth: NDArray[np.bool_], t: list[float], need: int
) -> None:
    """Raise each threshold (in place) to the highest value at which the union still holds
    `need` defective photos; this never holds more good photos."""
    changed = True
    while changed:
        changed = False
        for k in range(p.shape[1]):
            if math.isinf(t[k]):
                continue
            others = np.zeros(len(p), bool)
            for j, tj in enumerate(t):
                if j != k:
                    others |= p[:, j] >= tj
            cand = np.unique(p[:, k][p[:, k] >= t[k]])
            only_k = np.sort(p[truth & ~others, k])
            caught = int((others & truth).sum()) + only_k.size - np.searchsorted(only_k, cand)
            ok = cand[caught >= need]
            if ok.size and ok.max() > t[k]:
                t[k] = float(ok.max())
                changed = True


Chooser = Callable[[NDArray[np.float64], NDArray[np.bool_], float], list[float]]


def common_level(classes: Sequence[str]) -> Chooser:
    """choose_thresholds's common recall level as a Chooser."""
    from training.calibrate import choose_thresholds

    def choose(p: NDArray[np.float64], y: NDArray[np.bool_], target: float) -> list[float]:
        level = choose_thresholds(p, y, classes, target_recall=target)
        return [level.thresholds[c].threshold for c in classes]

    return choose


def cross_validated(
    choose: Chooser,
    probs: NDArray[np.floating],
    y: NDArray[np.bool_],
    target_recall: float,
    folds: int = 5,
    seed: int = 0,
) -> tuple[float, float]:
    """(recall, false-hold) of a threshold chooser on photos it was not fitted on: the photos
    are dealt into `folds` folds, each scored with thresholds chosen on the others at
    `target_recall`, and the counts pooled. What a val split promises a test set."""
    p, y = np.asarray(probs, np.float64), np.asarray(y, bool)
    truth = y.any(axis=1)
    fold = np.random.default_rng(seed).permutation(len(p)) % folds
    caught = held_good = 0
    for i in range(folds):
        fit, out = fold != i, fold == i
        if not truth[fit].any():
            raise ValueError(f"fold {i}: no photo with a positive label to fit on")
        held = (p[out] >= np.asarray(choose(p[fit], y[fit], target_recall))).any(axis=1)
        caught += int((held & truth[out]).sum())
        held_good += int((held & ~truth[out]).sum())
    n_def, n_good = int(truth.sum()), int((~truth).sum())
    return caught / max(n_def, 1), held_good / max(n_good, 1)


def compare(
    val: tuple[NDArray[np.floating], NDArray[np.bool_]],
    test: tuple[NDArray[np.floating], NDArray[np.bool_]],
    classes: Sequence[str],
    targets: Sequence[float] = TARGETS,
) -> list[dict[str, float | str]]:
    """Both choosers fitted on `val` at each target recall, scored on `val` and `test`, and
    cross-validated on `val` (`cross_validated`)."""
    from training.metrics import any_defect, macro_f1

    (pv, yv), (pt, yt) = val, test
    choosers: dict[str, Chooser] = {
        "common recall level": common_level(classes),
        "greedy per class": greedy_thresholds,
    }
    rows: list[dict[str, float | str]] = []
    for target in targets:
        for chooser, choose in choosers.items():
            th = choose(pv, yv, target)
            row: dict[str, float | str] = {"target": target, "chooser": chooser}
            for name, p, y in (("val", pv, yv), ("test", pt, yt)):
                ad = any_defect(p, y, th, classes)
                row[f"{name}_recall"] = ad.recall
                row[f"{name}_false_hold"] = ad.false_hold_rate
                row[f"{name}_macro_f1"] = macro_f1(p, y, th)
            row["cv_recall"], row["cv_false_hold"] = cross_validated(choose, pv, yv, target)
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    """python -m research.threshold_probe PACKAGE --val DATA[:SPLIT] --test DATA[:SPLIT]"""
    from qc_model.errors import DataError
    from research.judged_study import judged_scores, study_inputs

    try:
        s = judged_scores(*study_inputs(argv, main.__doc__))
    except DataError as exc:
        raise SystemExit(f"error: {exc}") from None
    (pv, yv, gv), (pt, yt, gt) = s.val, s.test
    if not yv[gv].any():
        raise SystemExit("error: no judged val photo has a defect to fit on")
    rows = compare((pv[gv], yv[gv]), (pt[gt], yt[gt]), s.classes)
    print(f"judged photos: {int(gv.sum())} val, {int(gt.sum())} test")
    print("| target | chooser | val recall | val false-hold | test recall | test false-hold "
          "| test macro-F1 | val 5-fold recall | val 5-fold false-hold |")  # fmt: skip
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['target']} | {r['chooser']} | {r['val_recall']:.3f} | "
              f"{r['val_false_hold']:.3f} | {r['test_recall']:.3f} | {r['test_false_hold']:.3f} "
              f"| {r['test_macro_f1']:.3f} | {r['cv_recall']:.3f} "
              f"| {r['cv_false_hold']:.3f} |")  # fmt: skip


if __name__ == "__main__":
    main()
