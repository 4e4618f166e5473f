"""Per-epoch validation scores: mAP and macro F1 (multi-label); accuracy, F1, confusion (single)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from training.metrics import average_precision, confusion_matrix, macro_f1


def _nan_to_none(v: float) -> float | None:
    return None if np.isnan(v) else float(v)


def score(
    logits: torch.Tensor, targets: NDArray[Any], task: str, classes: Sequence[str]
) -> dict[str, Any]:
    """Scores at the default operating point (0.5 / argmax); calibration comes later."""
    if task == "single_label":
        pred = logits.argmax(dim=1).numpy()
        k = len(classes)
        cm = confusion_matrix(pred, targets, k)
        tp = np.diag(cm).astype(np.float64)
        precision = tp / np.maximum(cm.sum(axis=0), 1)
        recall = tp / np.maximum(cm.sum(axis=1), 1)
        denom = precision + recall
        f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
        present = cm.sum(axis=1) > 0
        return {
            "val_accuracy": float(tp.sum() / max(cm.sum(), 1)),
            "val_macro_f1": float(f1[present].mean()) if present.any() else None,
            "val_f1": {c: float(f1[i]) for i, c in enumerate(classes) if present[i]},
            "val_confusion": cm.tolist(),
        }
    probs = torch.sigmoid(logits).numpy()
    aps = {c: average_precision(probs[:, i], targets[:, i]) for i, c in enumerate(classes)}
    present = [v for v in aps.values() if not np.isnan(v)]
    # Photo level: any defect predicted vs any defect present.
    any_true, any_pred = targets.max(axis=1) > 0.5, probs.max(axis=1) >= 0.5
    return {
        "val_map": float(np.mean(present)) if present else None,
        "val_macro_f1": _nan_to_none(macro_f1(probs, targets, [0.5] * len(classes))),
        "val_ap": {c: float(v) for c, v in aps.items() if not np.isnan(v)},
        "val_any_defect_accuracy": float((any_true == any_pred).mean()),
    }
