"""Evaluation plots (PNG, matplotlib Agg) and one self-contained HTML report with them embedded."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on training hosts; must precede pyplot
import matplotlib.pyplot as plt
import numpy as np
from numpy.typing import NDArray

from training.metrics import any_defect, as_onehot, defect_columns, pr_curve, reliability


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_pr_curves(probs: NDArray, targets: NDArray, classes: Sequence[str], path: Path) -> Path:
    y = as_onehot(targets, len(classes))
    fig, ax = plt.subplots(figsize=(6.5, 5))
    for k, name in enumerate(classes):
        if y[:, k].sum() == 0:
            continue  # no positives: no curve to draw
        precision, recall, _ = pr_curve(probs[:, k], y[:, k])
        ax.step(np.r_[0, recall], np.r_[1, precision], where="post", label=name)
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1.01), ylim=(0, 1.02), title="PR curves")
    ax.grid(alpha=0.3)
    if ax.get_lines():
        ax.legend(fontsize=7, loc="lower left")
    else:  # a split with no positive photo of any class: say so instead of an empty legend
        ax.text(0.5, 0.5, "no defective photos in this split", ha="center", va="center")
    return _save(fig, path)


def plot_reliability(
    panels: Sequence[tuple[NDArray, NDArray, str]], task: str, path: Path, bins: int = 15
) -> Path:
    """One reliability diagram per (probabilities, targets, title) panel, side by side."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 4.2), sharey=True)
    axes = np.atleast_1d(axes)
    for ax, (probs, targets, title) in zip(axes, panels, strict=True):
        conf, freq, count = reliability(probs, targets, task, bins)
        used = count > 0
        centers = (np.arange(bins) + 0.5) / bins
        ax.bar(
            centers[used], freq[used], width=1 / bins, alpha=0.6, edgecolor="k", label="observed"
        )
        ax.plot(conf[used], freq[used], "o", ms=3, color="C3", label="mean confidence")
        ax.plot([0, 1], [0, 1], "k--", lw=1)
        ax.set(xlabel="confidence", title=f"reliability: {title}", xlim=(0, 1))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("observed frequency")
    axes[0].legend(fontsize=7)
    return _save(fig, path)


def plot_threshold_sweep(
    probs: NDArray, targets: NDArray, classes: Sequence[str], chosen: Sequence[float], path: Path
) -> Path:
    """Any-defect recall and false-hold rate when one common threshold is used for all classes,
    with the chosen per-class operating point marked."""
    grid = np.linspace(0.0, 1.0, 101)
    rec, fhr = [], []
    for t in grid:
        r = any_defect(probs, targets, [t] * len(classes), classes)
        rec.append(r.recall)
        fhr.append(r.false_hold_rate)
    op = any_defect(probs, targets, chosen, classes)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    ax.plot(grid, rec, label="defect recall")
    ax.plot(grid, fhr, label="false-hold rate (good photos held)")
    ax.axhline(op.recall, color="C0", ls=":", lw=1)
    ax.axhline(op.false_hold_rate, color="C1", ls=":", lw=1)
    ax.set(xlabel="common threshold", ylabel="rate", ylim=(-0.02, 1.02))
    ax.set_title(
        f"threshold sweep (dotted: chosen per-class thresholds, recall {op.recall:.3f}, "
        f"false-hold {op.false_hold_rate:.3f})",
        fontsize=9,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center right")
    return _save(fig, path)


def plot_confusions(
    matrices: Sequence[NDArray], titles: Sequence[str], labels: Sequence[str], path: Path
) -> Path:
    n = len(matrices)
    cols = min(n, 5)
    rows = (n + cols - 1) // cols
    side = 2.6 if len(labels) <= 2 else max(4.0, 0.5 * len(labels))
    fig, axes = plt.subplots(rows, cols, figsize=(side * cols, side * rows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    for ax, m, title in zip(axes.ravel(), matrices, titles, strict=False):
        ax.imshow(m, cmap="Blues")
        for (i, j), v in np.ndenumerate(m):
            colour = "white" if v > 0.5 * max(m.max(), 1) else "black"  # legible on dark cells
            ax.text(j, i, str(int(v)), ha="center", va="center", fontsize=8, color=colour)
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("predicted", fontsize=7)
        ax.set_ylabel("true", fontsize=7)
    return _save(fig, path)


def plot_group_auroc(
    grid: Sequence[Sequence[float | None]],
    positives: Sequence[Sequence[int]],
    groups: Sequence[str],
    classes: Sequence[str],
    path: Path,
) -> Path:
    """Design x class heatmap of AUROC among one design's photos (0.5: no better than chance,
    the score follows the design rather than the defect); blank where a design has no
    positives or no negatives of a class."""
    a = np.array([[np.nan if v is None else v for v in row] for row in grid], dtype=np.float64)
    fig, ax = plt.subplots(figsize=(1.1 * len(classes) + 3.2, 0.36 * len(groups) + 1.6))
    shown = ax.imshow(np.ma.masked_invalid(a), cmap="RdYlGn", vmin=0.3, vmax=1.0, aspect="auto")
    for (i, j), v in np.ndenumerate(a):
        if not np.isnan(v):
            ax.text(j, i, f"{v:.2f}\n{positives[i][j]}+", ha="center", va="center", fontsize=6)
    ax.set_xticks(range(len(classes)), classes, rotation=35, ha="right", fontsize=7)
    ax.set_yticks(range(len(groups)), groups, fontsize=7)
    ax.set_title("AUROC within each design (n+ = defective photos)", fontsize=9)
    fig.colorbar(shown, ax=ax, fraction=0.03)
    return _save(fig, path)


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return "–" if np.isnan(v) else f"{v:.3f}"
    return html.escape(str(v))


def html_table(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return "<p>(none)</p>"
    cols = list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{_fmt(r.get(c))}</td>" for c in cols) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def write_html(
    path: Path, title: str, summary: dict[str, Any], sections: Sequence[tuple[str, str]]
) -> Path:
    """Write one HTML file; sections are (heading, html); PNG paths become embedded <img>."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>",
        "body{font-family:sans-serif;margin:2em;max-width:1100px}",
        "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;",
        "padding:3px 8px;font-size:13px;text-align:right}th{background:#f3f3f3}",
        "img{max-width:100%}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        html_table([{"": k, "value": v} for k, v in summary.items()]),
    ]
    for heading, content in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>{content}")
    parts.append("</body></html>")
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def img_tag(png: Path) -> str:
    data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
    return f"<img alt='{html.escape(png.name)}' src='data:image/png;base64,{data}'>"


def defect_only(classes: Sequence[str]) -> list[str]:
    return [classes[k] for k in defect_columns(classes)]


def plot_anomaly_roc(curves: Sequence[tuple[str, NDArray, NDArray]], path: Path) -> Path:
    """ROC of the anomaly level, one curve per (name, scores, positive) group: defective
    photos against the good photos of the same group."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for name, scores, positive in curves:
        y = np.asarray(positive, bool)
        if y.all() or not y.any():
            continue  # one class only: no curve
        order = np.argsort(-np.asarray(scores, np.float64), kind="mergesort")
        tpr = np.r_[0, np.cumsum(y[order]) / y.sum()]
        fpr = np.r_[0, np.cumsum(~y[order]) / (~y).sum()]
        ax.plot(fpr, tpr, label=f"{name} ({int(y.sum())}+ / {int((~y).sum())} good)")
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.set(xlabel="good photos held (false-hold rate)", ylabel="defective photos held")
    ax.set(title="anomaly model: ROC", xlim=(0, 1), ylim=(0, 1.01))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)
