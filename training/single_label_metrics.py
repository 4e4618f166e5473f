"""What `kito eval` reports for a single-label task, and its report section and ROC plot.

A single-label network picks one class per photo (accuracy, balanced accuracy, per-class
precision / recall / F1 at the top class, confusion) and the service holds a photo when any
defect class reaches its threshold (the operating point). The defect score of a photo is
1 - p(good): its AUROC says how well defective photos rank above good ones at any threshold."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from qc_model.manifest import GOOD
from training.metrics import any_defect, as_onehot, auroc, binary_counts, confusion_matrix
from training.report import html_table, img_tag


def defect_score(probs: NDArray, classes: Sequence[str]) -> NDArray[np.float64] | None:
    """1 - p(good) per photo; None when no class means "no defect"."""
    if GOOD not in classes:
        return None
    return 1.0 - np.asarray(probs, dtype=np.float64)[:, list(classes).index(GOOD)]


def single_label_scores(
    probs: NDArray, targets: NDArray, classes: Sequence[str], thresholds: Sequence[float]
) -> dict[str, Any]:
    """Top-class and operating-point numbers; NaN (None in JSON) where a split cannot say."""
    p = np.asarray(probs, dtype=np.float64)
    k = len(classes)
    truth = as_onehot(targets, k).argmax(axis=1) if len(p) else np.zeros(0, np.int64)
    pred = p.argmax(axis=1) if len(p) else np.zeros(0, np.int64)
    per_class = []
    recalls = []
    for i, name in enumerate(classes):
        c = binary_counts(pred == i, truth == i)
        support = int((truth == i).sum())
        per_class.append(
            {"name": name, "support": support, "precision": c.precision if c.tp + c.fp else None,
             "recall": c.recall if support else None, "f1": c.f1 if support else None}
        )  # fmt: skip
        if support:
            recalls.append(c.recall)
    out: dict[str, Any] = {
        "accuracy": float((pred == truth).mean()) if len(p) else float("nan"),
        # Mean recall over the classes present: what accuracy would be with balanced classes.
        "balanced_accuracy": float(np.mean(recalls)) if recalls else float("nan"),
        "per_class": per_class,
        "confusion": confusion_matrix(pred, truth, k).tolist(),
        "good_class": GOOD if GOOD in classes else None,
    }
    score = defect_score(p, classes)
    if score is not None:
        defective = truth != list(classes).index(GOOD)
        out["auroc_defective"] = auroc(score, defective)
        d = any_defect(p, targets, thresholds, classes)
        held = _held(p, thresholds, classes)
        out["operating_point"] = {
            "thresholds": {
                c: float(t) for c, t in zip(classes, thresholds, strict=True) if c != GOOD
            },
            "recall": d.recall,
            "false_hold_rate": d.false_hold_rate,
            "held": d.held,
            # Share of photos the service's hold / pass decision gets right.
            "accuracy": float((held == defective).mean()) if len(p) else float("nan"),
        }
    return out


def _held(p: NDArray, thresholds: Sequence[float], classes: Sequence[str]) -> NDArray[np.bool_]:
    cols = [i for i, c in enumerate(classes) if c != GOOD]
    t = np.asarray(thresholds, dtype=np.float64)[cols]
    return (p[:, cols] >= t).any(axis=1) if cols else np.zeros(len(p), bool)


def plot_roc(
    score: NDArray, defective: NDArray, point: tuple[float, float] | None, path: Path
) -> Path:
    """ROC of the defect score; `point` (false-hold rate, recall) marks the operating point."""
    from training.report import _save, plt

    s, y = np.asarray(score, dtype=np.float64), np.asarray(defective, bool)
    order = np.argsort(-s, kind="mergesort")
    tpr = np.r_[0.0, np.cumsum(y[order]) / max(int(y.sum()), 1)]
    fpr = np.r_[0.0, np.cumsum(~y[order]) / max(int((~y).sum()), 1)]
    fig, ax = plt.subplots(figsize=(4.5, 4.2))
    ax.plot(fpr, tpr, lw=1.6, label="defect score (1 - p(good))")
    ax.plot([0, 1], [0, 1], ":", color="grey", lw=1)
    if point is not None and None not in point:
        ax.plot([point[0]], [point[1]], "o", color="crimson", label="service operating point")
    ax.set(xlabel="false-hold rate (good photos held)", ylabel="recall (defective photos held)")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), title="ROC: defective vs good")
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def report_section(
    scores: dict[str, Any], probs: NDArray, targets: NDArray, classes: Sequence[str], out: Path
) -> list[tuple[str, str]]:
    """HTML sections for index.html: the numbers, per class at the top class, ROC."""
    one = scores.get("single_label")
    if not one:
        return []
    rows = [
        {"accuracy (top class)": one["accuracy"], "balanced accuracy": one["balanced_accuracy"],
         "AUROC defective vs good": one.get("auroc_defective"),
         **({f"operating point: {k}": v for k, v in one["operating_point"].items()
             if k != "thresholds"} if "operating_point" in one else {})}
    ]  # fmt: skip
    body = html_table(rows) + html_table(one["per_class"])
    score = defect_score(probs, classes)
    if score is not None and len(score):
        truth = as_onehot(targets, len(classes)).argmax(axis=1) != list(classes).index(GOOD)
        if truth.any() and (~truth).any():
            op = one.get("operating_point", {})
            point = (op.get("false_hold_rate"), op.get("recall"))
            body += img_tag(plot_roc(score, truth, point, out / "roc.png"))  # type: ignore[arg-type]
    elif one["good_class"] is None:
        body += (
            "<p>No class means 'no defect' (import with --good-label NAME): every photo "
            "counts as defective, so there is no false-hold rate or ROC.</p>"
        )
    return [("Single-label: top class, operating point, ROC", body)]
