"""The comparison report of a retraining: one self-contained HTML page with PNG plots.

Per-class F1 of champion and challenger (and the delta) on the holdout and the reviewed batch,
their confusion matrices, and the photos whose held / not-held decision flipped between them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import cv2
import matplotlib

matplotlib.use("Agg")  # no display on training hosts; must precede pyplot
import matplotlib.pyplot as plt
import numpy as np

from qc_model.inference import read_image
from training.compare import Comparison, PhotoSet
from training.report import _save, html_table, img_tag, plot_confusions, write_html

MAX_FLIPPED = 24


def plot_f1_deltas(c: Comparison, path: Path) -> Path:
    fig, axes = plt.subplots(1, len(c.sets), figsize=(6 * len(c.sets), 4.2), squeeze=False)
    for ax, s in zip(axes[0], c.sets.values(), strict=True):
        k = np.arange(len(c.classes))
        champ = [r["f1"] for r in s.champion.per_class] or [0.0] * len(k)
        chal = [r["f1"] for r in s.challenger.per_class] or [0.0] * len(k)
        delta = np.asarray(chal) - np.asarray(champ)
        ax.bar(k, delta, color=["C2" if d >= 0 else "C3" for d in delta])
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(k, c.classes, rotation=45, ha="right", fontsize=8)
        ax.set(ylabel="F1 challenger - champion", title=f"{s.name} ({len(s.records)} photos)")
        ax.set_ylim(-1.05, 1.05)
        ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def _any_defect_matrix(s: PhotoSet, held: np.ndarray) -> np.ndarray:
    truth = s.targets.any(axis=1)
    m = np.zeros((2, 2), np.int64)
    np.add.at(m, (truth.astype(int), held.astype(int)), 1)
    return m


def plot_confusion_grid(c: Comparison, path: Path) -> Path:
    mats, titles = [], []
    for s in c.sets.values():
        for who, scores in (("champion", s.champion), ("challenger", s.challenger)):
            mats.append(_any_defect_matrix(s, scores.held))
            titles.append(f"{s.name}: {who}, any defect")
    h = c.sets["holdout"]
    for who, scores in (("champion", h.champion), ("challenger", h.challenger)):
        for row in scores.per_class:
            mats.append(np.asarray(row["confusion"]))
            titles.append(f"holdout {who}: {row['name']}")
    return plot_confusions(mats, titles, ["no", "yes"], path)


def flipped(c: Comparison) -> list[tuple[PhotoSet, int]]:
    """(set, index) of photos whose any-defect decision differs between the two models."""
    out = []
    for s in c.sets.values():
        for i in np.flatnonzero(s.champion.held != s.challenger.held):
            out.append((s, int(i)))
    return out


def plot_flipped(c: Comparison, path: Path) -> Path | None:
    items = flipped(c)[:MAX_FLIPPED]
    if not items:
        return None
    cols = min(6, len(items))
    rows = math.ceil(len(items) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.9 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (s, i) in zip(axes.ravel(), items, strict=False):
        r = s.records[i]
        img = read_image(s.root / r.image)
        scale = 240 / max(img.shape[:2])
        small = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        ax.imshow(small[:, :, ::-1])
        labels = zip(c.classes, s.targets[i], strict=True)
        truth = "+".join(name for name, y in labels if y) or "good"
        right = bool(s.challenger.held[i]) == bool(s.targets[i].any())
        ax.set_title(
            f"{s.name}: {truth}\nchampion {'held' if s.champion.held[i] else 'passed'}, "
            f"challenger {'held' if s.challenger.held[i] else 'passed'}",
            fontsize=7,
            color="C2" if right else "C3",
        )
    return _save(fig, path)


def _class_rows(s: PhotoSet) -> list[dict[str, Any]]:
    rows = []
    for a, b in zip(s.champion.per_class, s.challenger.per_class, strict=True):
        rows.append(
            {
                "class": a["name"],
                "support": a["support"],
                "champion F1": a["f1"],
                "challenger F1": b["f1"],
                "delta": b["f1"] - a["f1"],
                "champion recall": a["recall"],
                "challenger recall": b["recall"],
            }
        )
    return rows


def write_comparison_report(c: Comparison, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    g = c.gate
    summary: dict[str, Any] = {
        "champion": c.champion,
        "challenger": c.challenger,
        "promotion gate": "passed" if g.passed else "FAILED",
        "why not": "; ".join(g.reasons) or "-",
        "classes compared": ", ".join(c.classes),
    }
    for s in c.sets.values():
        summary[f"{s.name} photos"] = len(s.records)
        summary[f"{s.name} flipped decisions"] = int((s.champion.held != s.challenger.held).sum())
    checks = [
        {"rule": x.name, "champion": x.champion, "challenger": x.challenger, "delta": x.delta}
        | {"passed": "yes" if x.passed else "NO", "requirement": x.rule}
        for x in g.checks
    ]
    sections = [
        ("Promotion gate", html_table(checks)),
        (
            "Per-class F1: challenger minus champion",
            img_tag(plot_f1_deltas(c, out / "f1_deltas.png")),
        ),
    ]
    for s in c.sets.values():
        sections.append((f"Per class, {s.name}", html_table(_class_rows(s))))
    sections.append(("Confusion matrices", img_tag(plot_confusion_grid(c, out / "confusion.png"))))
    png = plot_flipped(c, out / "flipped.png")
    sections.append(
        (
            f"Flipped decisions (first {MAX_FLIPPED}; green: the challenger is right)",
            img_tag(png) if png else "<p>none: both models hold the same photos</p>",
        )
    )
    title = f"Kito QC retraining: {c.challenger} vs {c.champion}"
    return write_html(out / "index.html", title, summary, sections)
