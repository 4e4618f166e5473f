"""Temperature scaling and operating thresholds, both fitted on the validation split."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from qc_model.package import ClassThreshold
from training.metrics import as_onehot, expected_calibration_error, pr_curve

# Temperatures outside this range mean a broken model or broken data, not miscalibration.
T_MIN, T_MAX = 0.05, 20.0
_EPS = 1e-7


def logits_from_probs(probs: NDArray, task: str) -> NDArray[np.float64]:
    """Invert sigmoid (multi-label) or softmax up to a constant (single-label)."""
    p = np.clip(np.asarray(probs, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p / (1 - p)) if task == "multilabel" else np.log(p)


def apply_temperature(logits: NDArray, temperature: float, task: str) -> NDArray[np.float64]:
    z = np.asarray(logits, dtype=np.float64) / temperature
    if task == "multilabel":
        return 1.0 / (1.0 + np.exp(-z))
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(logits: NDArray, targets: NDArray, temperature: float, task: str) -> float:
    """Mean negative log-likelihood (BCE summed over classes for multi-label)."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    y = as_onehot(targets, z.shape[1]).astype(np.float64)
    if task == "multilabel":
        # log(1 + exp(-|z|)) form: no overflow for large logits.
        loss = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
        return float(loss.sum(axis=1).mean())
    zmax = z.max(axis=1, keepdims=True)
    lse = zmax[:, 0] + np.log(np.exp(z - zmax).sum(axis=1))
    return float(np.mean(lse - (z * y).sum(axis=1)))


def fit_temperature(logits: NDArray, targets: NDArray, task: str) -> float:
    """The one temperature T minimising validation NLL of logits / T.

    NLL is convex in the inverse temperature, so a coarse log grid followed by golden-section
    search on the bracketing interval finds the global minimum without an optimiser library.
    """
    if np.asarray(logits).shape[0] == 0:
        raise ValueError("cannot fit a temperature on zero validation photos")
    grid = np.geomspace(T_MIN, T_MAX, 41)
    losses = [nll(logits, targets, t, task) for t in grid]
    i = int(np.argmin(losses))
    lo, hi = math.log(grid[max(i - 1, 0)]), math.log(grid[min(i + 1, grid.size - 1)])
    g = (math.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = nll(logits, targets, math.exp(a), task), nll(logits, targets, math.exp(b), task)
    for _ in range(40):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = nll(logits, targets, math.exp(a), task)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = nll(logits, targets, math.exp(b), task)
    return float(math.exp((lo + hi) / 2))


@dataclass(frozen=True)
class Calibration:
    temperature: float
    ece_before: float
    ece_after: float
    nll_before: float
    nll_after: float


def calibrate(logits: NDArray, targets: NDArray, task: str) -> Calibration:
    t = fit_temperature(logits, targets, task)
    return Calibration(
        temperature=t,
        ece_before=expected_calibration_error(apply_temperature(logits, 1.0, task), targets, task),
        ece_after=expected_calibration_error(apply_temperature(logits, t, task), targets, task),
        nll_before=nll(logits, targets, 1.0, task),
        nll_after=nll(logits, targets, t, task),
    )


def threshold_at_recall(scores: NDArray, positive: NDArray, target: float) -> float | None:
    """The highest threshold t with recall(score >= t) >= target; None without positives."""
    s = np.asarray(scores, dtype=np.float64)[np.asarray(positive).astype(bool)]
    if s.size == 0:
        return None
    need = max(1, math.ceil(target * s.size - 1e-9))
    return float(np.sort(s)[::-1][need - 1])


def threshold_at_precision(
    scores: NDArray, positive: NDArray, target: float, floor: float
) -> float:
    """The lowest threshold >= floor whose precision reaches target; 1.0 (never) if none does."""
    precision, _, thresholds = pr_curve(scores, positive)
    ok = (thresholds >= floor) & (precision >= target)
    return float(thresholds[ok].min()) if ok.any() else 1.0


@dataclass(frozen=True)
class ThresholdChoice:
    thresholds: dict[str, ClassThreshold]
    # Classes without a positive validation photo: their thresholds are the fallback, untuned.
    untuned: list[str]
    # The common per-class recall level the any-defect decision was tuned at.
    recall_level: float = 1.0


def choose_thresholds(
    probs: NDArray,
    targets: NDArray,
    classes: Sequence[str],
    target_recall: float = 0.97,
    fail_precision: float = 0.95,
    fallback: float = 0.5,
    good: str = "good",
) -> ThresholdChoice:
    """Per-class hold thresholds chosen jointly for the "any defect" decision, plus fail bands.

    A photo is held (review or fail) when any defect class reaches its threshold, so the
    recall that matters is over the union. Asking each class alone for `target_recall` holds
    nearly every good photo once there are several classes. Instead every class gets the
    threshold at a common per-class recall level r, and r is the level whose union reaches
    `target_recall` on defective photos with the fewest good photos held (ties: the higher r).

    Below review_low (= threshold): pass. From review_high on: fail (validation precision >=
    fail_precision there). In between: a person looks.
    """
    if not 0 < target_recall <= 1:
        raise ValueError("target_recall must lie in (0, 1]")
    p = np.asarray(probs, dtype=np.float64)
    y = as_onehot(targets, p.shape[1])
    cols = [k for k, c in enumerate(classes) if c != good]
    tuned = [k for k in cols if y[:, k].any()]
    truth = y[:, cols].any(axis=1) if cols else np.zeros(len(p), bool)
    n_def, n_good = int(truth.sum()), int((~truth).sum())

    def thresholds_at(level: float) -> dict[int, float]:
        # Every tuned class has positives, so threshold_at_recall never returns None here.
        return {k: float(threshold_at_recall(p[:, k], y[:, k], level)) for k in tuned}  # type: ignore[arg-type]

    best_level, best_key = 1.0, None
    for level in np.linspace(0.3, 1.0, 141):
        t = thresholds_at(float(level))
        held = np.zeros(len(p), bool)
        for k, tk in t.items():
            held |= p[:, k] >= tk
        recall = (held & truth).sum() / n_def if n_def else 1.0
        if recall + 1e-12 < target_recall:
            continue
        false_hold = (held & ~truth).sum() / n_good if n_good else 0.0
        key = (false_hold, -level)
        if best_key is None or key < best_key:
            best_level, best_key = float(level), key
    chosen = thresholds_at(best_level)
    out: dict[str, ClassThreshold] = {}
    untuned = []
    for k, name in enumerate(classes):
        if k not in chosen:
            untuned.append(name)
            out[name] = ClassThreshold(
                threshold=fallback, review_low=fallback, review_high=fallback
            )
            continue
        t = chosen[k]
        high = threshold_at_precision(p[:, k], y[:, k], fail_precision, floor=t)
        out[name] = ClassThreshold(threshold=t, review_low=t, review_high=high)
    return ThresholdChoice(thresholds=out, untuned=untuned, recall_level=best_level)


@dataclass(frozen=True)
class OperatingPoint:
    """Calibration and thresholds fitted together on one validation split."""

    calibration: Calibration
    choice: ThresholdChoice
    val_probs: NDArray[np.float64]  # calibrated

    def threshold_vector(self, classes: Sequence[str]) -> list[float]:
        return [self.choice.thresholds[c].threshold for c in classes]


def fit_operating_point(
    raw_probs: NDArray,
    targets: NDArray,
    classes: Sequence[str],
    task: str,
    target_recall: float = 0.97,
) -> OperatingPoint:
    """Temperature on the uncalibrated validation probabilities, then thresholds on the result."""
    logits = logits_from_probs(raw_probs, task)
    cal = calibrate(logits, targets, task)
    probs = apply_temperature(logits, cal.temperature, task)
    choice = choose_thresholds(probs, targets, classes, target_recall=target_recall)
    return OperatingPoint(calibration=cal, choice=choice, val_probs=probs)
