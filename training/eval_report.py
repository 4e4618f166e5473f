"""The HTML report of `kito eval` (index.html with its PNGs beside it): the summary, per-class
tables for all photos and for those the gate passes, and the plots of training.report."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from training.report import (
    html_table,
    img_tag,
    plot_confusions,
    plot_group_auroc,
    plot_pr_curves,
    plot_reliability,
    plot_threshold_sweep,
    write_html,
)
from training.single_label_metrics import report_section

PROVENANCE = ("checkpoint", "package", "model_version", "manifest", "manifest_version", "split")


def write_report(
    out: Path,
    metrics: dict[str, Any],
    thresholds: Sequence[float],
    reliability_panels: Sequence[tuple[NDArray, NDArray, str]],
    probs: NDArray,
    targets: NDArray,
    classes: Sequence[str],
    task: str,
    extra: Sequence[tuple[str, str]] = (),
) -> Path:
    """index.html with the PNGs beside it; `metrics` as `evaluate_predictions` or
    `evaluate_package` make it, `reliability_panels` (probs, targets, title) side by side,
    `extra` (heading, html) sections at the end (the anomaly model's)."""
    split = metrics.get("split", "scored split")
    pngs = {
        "pr": plot_pr_curves(probs, targets, classes, out / "pr_curves.png"),
        "rel": plot_reliability(reliability_panels, task, out / "reliability.png"),
        "sweep": plot_threshold_sweep(probs, targets, classes, thresholds, out / "thresholds.png"),
    }
    s = metrics["scores"]
    if task == "single_label":
        mats, titles, labels = [np.asarray(s["confusion"])], ["confusion"], list(classes)
    else:
        mats = [np.asarray(r["confusion"]) for r in s["per_class"]]
        titles, labels = [r["name"] for r in s["per_class"]], ["no", "yes"]
    pngs["cm"] = plot_confusions(mats, titles, labels, out / "confusion.png")
    per_class = _per_class_rows(s, metrics["thresholds"])
    summary: dict[str, Any] = {k: metrics[k] for k in PROVENANCE if k in metrics}
    cal = metrics["calibration"]
    summary["photos scored"] = s["photos"]
    if "ece_before" in cal:
        summary |= {
            "temperature (fitted on val)": cal["temperature"],
            "ECE val before / after": f"{cal['ece_before']:.4f} / {cal['ece_after']:.4f}",
            f"ECE {split} after": metrics["ece_after"],
        }
    else:  # a package: its calibration and thresholds were fitted when it was made
        summary |= {
            "temperature (the package's)": cal["temperature"],
            f"ECE val / {split}": f"{cal['ece_val']:.4f} / {metrics['ece_after']:.4f}",
        }
    summary["macro-F1"] = s["macro_f1"]
    if "macro_f1_ceiling" in s:
        summary["macro-F1 ceiling (each class at its best threshold here)"] = s["macro_f1_ceiling"]
    summary |= {
        "any-defect recall": s["any_defect"]["recall"],
        "any-defect false-hold rate": s["any_defect"]["false_hold_rate"],
    }
    if "accuracy" in s:
        summary["accuracy"] = s["accuracy"]
    judged = metrics.get("judged")
    if judged:
        j = judged["scores"]
        summary |= {
            "photos the gate passes (judged)": f"{j['photos']} of {s['photos']}",
            "judged: macro-F1": j["macro_f1"],
            **(
                {"judged: macro-F1 ceiling": j["macro_f1_ceiling"]}
                if "macro_f1_ceiling" in j
                else {}
            ),
            "judged: any-defect recall": j["any_defect"]["recall"],
            "judged: false-hold rate": j["any_defect"]["false_hold_rate"],
        }
    if metrics["untuned_classes"]:
        summary["untuned (no val positives)"] = ", ".join(metrics["untuned_classes"])
    sections = [
        (
            f"Per class ({metrics.get('threshold_source', 'thresholds chosen on val')})",
            html_table(per_class),
        ),
        ("PR curves", img_tag(pngs["pr"])),
        ("Reliability", img_tag(pngs["rel"])),
        ("Thresholds", img_tag(pngs["sweep"])),
        ("Confusion", img_tag(pngs["cm"])),
        *report_section(s, probs, targets, classes, out),
        ("By design", html_table(s["by_design"])),
        *_within_design_section(s.get("within_design"), out),
        ("By capture condition", html_table(s["by_capture"])),
    ]
    if judged:
        note = (
            "<p>Only the photos the photo gate passes: the service asks the model about no "
            "other photo (the rest get a retake instruction), so these are the numbers an "
            "artisan and a QC reviewer meet.</p>"
        )
        rows = html_table(_per_class_rows(judged["scores"], metrics["thresholds"]))
        sections.insert(1, ("Per class, photos the gate passes", note + rows))
    sections += extra
    return write_html(out / "index.html", f"Kito QC evaluation: {split}", summary, sections)


def _per_class_rows(s: dict[str, Any], thresholds: dict[str, Any]) -> list[dict[str, Any]]:
    cols = ("name", "support", "threshold", "precision", "recall", "f1", "auroc", "ap")
    inside = s.get("within_design")
    return [
        {
            **{k: r[k] for k in cols},
            **({"auroc within design": inside["stratified"][i]} if inside else {}),
            **({"best F1 (any threshold)": s["best_f1"][i]} if "best_f1" in s else {}),
            "review band": "{review_low:.3f} – {review_high:.3f}".format(**thresholds[r["name"]]),
        }
        for i, r in enumerate(s["per_class"])
    ]


def _within_design_section(inside: dict[str, Any] | None, out: Path) -> list[tuple[str, str]]:
    if not inside:
        return []
    png = plot_group_auroc(
        inside["auroc"],
        inside["positives"],
        inside["designs"],
        inside["classes"],
        out / "within_design_auroc.png",
    )
    note = (
        "<p>AUROC among each design's own photos. Near 0.5 the score does not tell that "
        "design's defective pieces from its good ones: it follows the design (material, size) "
        "rather than the defect, and one threshold then holds all of that design or none. "
        "'auroc within design' in the per-class table pools the same-design pairs.</p>"
    )
    return [("Does it see the defect? AUROC within each design", note + img_tag(png))]
