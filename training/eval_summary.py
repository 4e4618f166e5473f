"""The lines `kito eval` prints: whatever the split holds, a number that cannot be computed is
named as such ("no defective photos"), never a crash on a missing value."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _num(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.3f}"


def _decision(scores: dict[str, Any]) -> str:
    d = scores["any_defect"]
    if not d.get("defective"):
        recall = "any-defect recall n/a (no defective photos)"
    else:
        recall = f"any-defect recall {_num(d['recall'])}"
    if not d.get("good"):
        hold = "false-hold n/a (no good photos)"
    else:
        hold = f"false-hold {_num(d['false_hold_rate'])}"
    return f"{recall}, {hold}"


def _single_label(scores: dict[str, Any]) -> list[str]:
    one = scores.get("single_label")
    if not one:
        return []
    parts = [f"accuracy {_num(one['accuracy'])}", f"balanced {_num(one['balanced_accuracy'])}"]
    if one.get("good_class") is None:
        parts.append("no class means 'no defect' (import with --good-label NAME)")
    else:
        auroc = one.get("auroc_defective")
        parts.append(
            f"AUROC defective vs good {_num(auroc)}"
            + (" (needs both good and defective photos)" if auroc is None else "")
        )
        op = one.get("operating_point") or {}
        if op.get("accuracy") is not None:
            parts.append(f"hold/pass right at the service's thresholds {_num(op['accuracy'])}")
    return ["  " + ", ".join(parts)]


def summary_lines(metrics: dict[str, Any], split: str, out: Path) -> list[str]:
    """One line for the split, one for single-label numbers, one for the judged photos."""
    s = metrics["scores"]
    if not s.get("photos"):
        return [f"{split}: no photos to score; report {out / 'index.html'}"]
    temperature = metrics.get("calibration", {}).get("temperature")
    lines = [
        f"{split}: {s['photos']} photos, macro-F1 {_num(s.get('macro_f1'))}, {_decision(s)}, "
        f"T {_num(temperature)}; report {out / 'index.html'}"
    ]
    lines += _single_label(s)
    judged = metrics.get("judged")
    if judged:
        j = judged["scores"]
        lines.append(
            f"  the {j['photos']} photos the gate passes: macro-F1 {_num(j.get('macro_f1'))}, "
            f"{_decision(j)}"
        )
    return lines
