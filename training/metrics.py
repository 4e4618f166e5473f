"""Classification metrics in plain numpy: PR/ROC, per-class scores, any-defect decision, ECE."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


def as_onehot(targets: NDArray, num_classes: int) -> NDArray[np.int64]:
    """(N,) class indices or (N,K) 0/1 targets -> (N,K) 0/1 ints."""
    t = np.asarray(targets)
    if t.ndim == 1:
        out = np.zeros((t.shape[0], num_classes), dtype=np.int64)
        out[np.arange(t.shape[0]), t.astype(np.int64)] = 1
        return out
    if t.shape[1] != num_classes:
        raise ValueError(f"targets have {t.shape[1]} columns, expected {num_classes}")
    return (t > 0.5).astype(np.int64)


def pr_curve(scores: NDArray, positive: NDArray) -> tuple[Array, Array, Array]:
    """Precision, recall and the threshold of each distinct score, thresholds descending.

    A photo counts as predicted positive when score >= threshold.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(positive).astype(bool)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    # Last index of each run of equal scores: ties enter together.
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]
    tp = np.cumsum(y)[last].astype(np.float64)
    fp = (last + 1) - tp
    npos = y.sum()
    recall = tp / npos if npos else np.zeros_like(tp)
    precision = tp / (tp + fp)
    return precision, recall, s[last]


def average_precision(scores: NDArray, positive: NDArray) -> float:
    """Step-wise AP: sum over thresholds of (recall gain) x precision; NaN without positives."""
    y = np.asarray(positive).astype(bool)
    if not y.any():
        return float("nan")
    precision, recall, _ = pr_curve(scores, y)
    gains = np.diff(np.r_[0.0, recall])
    return float(np.sum(gains * precision))


def auroc(scores: NDArray, positive: NDArray) -> float:
    """Area under the ROC curve (Mann-Whitney U with tied ranks); NaN with one class only."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(positive).astype(bool)
    npos, nneg = int(y.sum()), int((~y).sum())
    if npos == 0 or nneg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(s.size, dtype=np.float64)
    sorted_s = s[order]
    # Average rank over runs of ties.
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_s)) + 1]
    ends = np.r_[starts[1:], s.size]
    avg = (starts + ends + 1) / 2.0  # 1-based mean rank of each run
    ranks[order] = np.repeat(avg, ends - starts)
    u = ranks[y].sum() - npos * (npos + 1) / 2.0
    return float(u / (npos * nneg))


def stratified_auroc(scores: NDArray, positive: NDArray, groups: Sequence[str]) -> float:
    """AUROC over pairs from the same group only: how often a positive scores above a negative
    of its own group (design). A score that follows the design (its material) instead of the
    defect has a high plain AUROC and a stratified one near 0.5. Groups holding only positives
    or only negatives add no pairs; NaN when no group has both."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(positive).astype(bool)
    g = np.asarray(groups)
    wins = pairs = 0.0
    for key in np.unique(g):
        sel = g == key
        n = float(y[sel].sum()) * float((~y[sel]).sum())
        if n:
            wins += auroc(s[sel], y[sel]) * n
            pairs += n
    return wins / pairs if pairs else float("nan")


@dataclass(frozen=True)
class BinaryCounts:
    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def binary_counts(predicted: NDArray, positive: NDArray) -> BinaryCounts:
    p = np.asarray(predicted).astype(bool)
    y = np.asarray(positive).astype(bool)
    return BinaryCounts(
        tp=int((p & y).sum()),
        fp=int((p & ~y).sum()),
        fn=int((~p & y).sum()),
        tn=int((~p & ~y).sum()),
    )


@dataclass(frozen=True)
class ClassMetrics:
    name: str
    support: int  # positives in the data
    threshold: float
    precision: float
    recall: float
    f1: float
    auroc: float
    ap: float
    confusion: tuple[tuple[int, int], tuple[int, int]]  # [[tn, fp], [fn, tp]]


def per_class_metrics(
    probs: NDArray, targets: NDArray, thresholds: Sequence[float], classes: Sequence[str]
) -> list[ClassMetrics]:
    """One-vs-rest scores for each class at its threshold (prob >= threshold is positive)."""
    p = np.asarray(probs, dtype=np.float64)
    y = as_onehot(targets, p.shape[1])
    out = []
    for k, name in enumerate(classes):
        c = binary_counts(p[:, k] >= thresholds[k], y[:, k])
        out.append(
            ClassMetrics(
                name=name,
                support=int(y[:, k].sum()),
                threshold=float(thresholds[k]),
                precision=c.precision,
                recall=c.recall,
                f1=c.f1,
                auroc=auroc(p[:, k], y[:, k]),
                ap=average_precision(p[:, k], y[:, k]),
                confusion=((c.tn, c.fp), (c.fn, c.tp)),
            )
        )
    return out


@dataclass(frozen=True)
class BestF1:
    """A class's highest F1 over every threshold on one set of photos, and where it is."""

    f1: float
    threshold: float
    precision: float
    recall: float


def best_f1(scores: NDArray[np.floating], positive: NDArray[np.bool_]) -> BestF1:
    """The highest F1 of `score >= t` against `positive` over every threshold t (a cut is
    possible only between distinct scores). No positive: F1 0 at threshold +inf."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(positive, dtype=bool)
    n_pos = int(y.sum())
    if n_pos == 0 or s.size == 0:
        return BestF1(0.0, float("inf"), 0.0, 0.0)
    order = np.argsort(-s, kind="stable")
    vals, hits = s[order], y[order]
    tp = np.cumsum(hits)
    k = np.arange(1, s.size + 1)
    # Holding the k highest is a threshold only where the next score is lower.
    cut = np.r_[vals[:-1] > vals[1:], True]
    f1 = np.where(cut, 2 * tp / (n_pos + k), -1.0)
    j = int(np.argmax(f1))
    return BestF1(
        f1=float(f1[j]),
        threshold=float(vals[j]),
        precision=float(tp[j] / k[j]),
        recall=float(tp[j] / n_pos),
    )


def macro_f1(probs: NDArray, targets: NDArray, thresholds: Sequence[float]) -> float:
    """Mean F1 over the classes that occur in the data (absent classes carry no signal)."""
    rows = per_class_metrics(probs, targets, thresholds, [str(k) for k in range(len(thresholds))])
    present = [r.f1 for r in rows if r.support > 0]
    return float(np.mean(present)) if present else float("nan")


def macro_f1_ceiling(probs: NDArray, targets: NDArray) -> tuple[list[BestF1], float]:
    """Each class's best F1 over every threshold, and their mean over the classes that occur:
    no choice of thresholds gives a higher macro-F1 on these photos."""
    p = np.asarray(probs, dtype=np.float64)
    y = as_onehot(targets, p.shape[1]).astype(bool)
    best = [best_f1(p[:, k], y[:, k]) for k in range(p.shape[1])]
    present = [b.f1 for b, k in zip(best, range(p.shape[1]), strict=True) if y[:, k].any()]
    return best, float(np.mean(present)) if present else float("nan")


def defect_columns(classes: Sequence[str], good: str = "good") -> list[int]:
    """Indices of the classes that mean "defective" (all but a single-label "good" class)."""
    return [k for k, c in enumerate(classes) if c != good]


@dataclass(frozen=True)
class AnyDefect:
    """The photo-level decision: defective when any defect class crosses its threshold."""

    n: int
    defective: int
    good: int
    recall: float  # defective photos held
    false_hold_rate: float  # good photos held (sent to review or fail)
    held: int

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


def any_defect(
    probs: NDArray, targets: NDArray, thresholds: Sequence[float], classes: Sequence[str]
) -> AnyDefect:
    p = np.asarray(probs, dtype=np.float64)
    y = as_onehot(targets, p.shape[1])
    cols = defect_columns(classes)
    truth = y[:, cols].any(axis=1)
    held = (p[:, cols] >= np.asarray(thresholds, dtype=np.float64)[cols]).any(axis=1)
    n_def, n_good = int(truth.sum()), int((~truth).sum())
    return AnyDefect(
        n=int(p.shape[0]),
        defective=n_def,
        good=n_good,
        recall=float((held & truth).sum() / n_def) if n_def else float("nan"),
        false_hold_rate=float((held & ~truth).sum() / n_good) if n_good else float("nan"),
        held=int(held.sum()),
    )


def confusion_matrix(predicted: NDArray, targets: NDArray, num_classes: int) -> NDArray[np.int64]:
    """KxK counts, rows = true class, columns = predicted class."""
    m = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(m, (np.asarray(targets, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1)
    return m


def reliability(
    probs: NDArray, targets: NDArray, task: str, bins: int = 15
) -> tuple[Array, Array, NDArray[np.int64]]:
    """Per equal-width confidence bin: mean confidence, observed frequency, count.

    Multi-label: every (photo, class) probability is one binary forecast. Single-label: the
    top-class confidence against whether the top class was right.
    """
    p = np.asarray(probs, dtype=np.float64)
    y = as_onehot(targets, p.shape[1])
    if task == "single_label":
        conf = p.max(axis=1)
        hit = (p.argmax(axis=1) == y.argmax(axis=1)).astype(np.float64)
    else:
        conf, hit = p.ravel(), y.ravel().astype(np.float64)
    idx = np.clip((conf * bins).astype(np.int64), 0, bins - 1)
    count = np.bincount(idx, minlength=bins)
    safe = np.maximum(count, 1)
    mean_conf = np.bincount(idx, weights=conf, minlength=bins) / safe
    freq = np.bincount(idx, weights=hit, minlength=bins) / safe
    return mean_conf, freq, count


def expected_calibration_error(
    probs: NDArray, targets: NDArray, task: str, bins: int = 15
) -> float:
    """ECE: count-weighted mean |confidence - frequency| over the bins of `reliability`."""
    conf, freq, count = reliability(probs, targets, task, bins)
    total = count.sum()
    return float(np.sum(count * np.abs(conf - freq)) / total) if total else float("nan")
