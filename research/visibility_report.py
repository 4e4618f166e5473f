"""Can the photo show the labelled defect? A package's misses and holds set against that.

    python -m research.visibility_report --data data/test-s2 --package models/default --out runs/vis

For every visual defect label of a synthetic data set (`kito data synth`), the photo is rendered
again without that defect: the renderer draws every photo from seeds, and a defect's own draws
come from a seed of their own, so the twin differs from the photo only where the defect is. The
defect's visibility is the number of pixels where the two differ by CIE76 ΔE >= 6 (a
difference an attentive observer sees; ~2.3 is the just-noticeable one). The package is then
scored on every photo (its own preprocessing and thresholds, as served), and the photo gate is
run on each photo as the service would. The report says, per class, how recall depends on
visibility and how well the scores separate visible defects from good photos, and what the
"any defect" numbers are on the photos the gate lets through (the only ones the model sees in
service). Per design it also gives the pixels per mm of the photo and of the network's input
(the smaller is the detail the network gets) beside each class's AUROC among that design's own
photos. Writes `visibility.json` (one row per label) and `summary.json`, prints the tables.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from qc_model.manifest import Manifest, Record
from training.visibility import label_visibility

BINS = ((0, 0), (1, 4), (5, 19), (20, 99), (100, None))


def _bin_name(lo: int, hi: int | None) -> str:
    return f"{lo}+" if hi is None else f"{lo}-{hi}"


def summarise(
    records: list[Record], probs: NDArray[Any], thresholds: list[float], classes: list[str],
    rows: list[dict[str, Any]], gate_pass: NDArray[np.bool_],
) -> dict[str, Any]:  # fmt: skip
    from training.metrics import auroc

    index = {r.id: i for i, r in enumerate(records)}
    y = np.array([[c in r.labels for c in classes] for r in records], bool)
    t = np.asarray(thresholds)
    held = (probs >= t).any(axis=1)
    truth = y.any(axis=1)
    out: dict[str, Any] = {"classes": {}}
    for k, c in enumerate(classes):
        pos = [(index[row["id"]], row["visible_px"]) for row in rows if row["label"] == c]
        by_bin = {}
        for lo, hi in BINS:
            sel = [i for i, v in pos if v >= lo and (hi is None or v <= hi)]
            rec = float(np.mean(probs[sel, k] >= t[k])) if sel else None
            by_bin[_bin_name(lo, hi)] = {"n": len(sel), "class_recall": rec}
        visible = np.zeros(len(records), bool)
        for i, v in pos:
            visible[i] |= v >= 5
        keep = ~y[:, k] | visible
        out["classes"][c] = {
            "positives": len(pos),
            "by_visible_px": by_bin,
            "auroc_all": auroc(probs[:, k], y[:, k]) if y[:, k].any() else None,
            "auroc_visible": auroc(probs[keep, k], visible[keep]) if visible.any() else None,
        }

    def rates(sel: NDArray[np.bool_]) -> dict[str, float | int]:
        d, g = sel & truth, sel & ~truth
        return {
            "defective": int(d.sum()),
            "good": int(g.sum()),
            "recall": float(held[d].mean()) if d.any() else float("nan"),
            "false_hold": float(held[g].mean()) if g.any() else float("nan"),
        }

    every = np.ones(len(records), bool)
    out["any_defect"] = {"all_photos": rates(every), "gate_passed": rates(gate_pass)}
    out["gate_pass_rate"] = float(gate_pass.mean())
    return out


def resolution_by_design(
    records: list[Record], probs: NDArray[Any], classes: list[str], input_size: int, margin: float
) -> dict[str, dict[str, Any]]:
    """Per design: how many pixels per mm the photo has around the piece (the renderer's own
    scale), how many the network's input has (the piece crop, `margin` on each side, resized
    to `input_size`), the smaller of the two (the detail the network can get), and the AUROC of
    each class among that design's photos. A 0.1 mm scratch is that many tenths of a pixel."""
    from training.evaluate import within_design

    scale: dict[str, list[tuple[float, float]]] = {}
    for r in records:
        boxes = [p["bbox_px"] for p in r.meta.get("pieces", []) if p.get("bbox_px")]
        ppm = float(r.meta.get("px_per_mm") or 0)
        if not boxes or ppm <= 0:
            continue
        b = np.array(boxes, np.float64)
        side_mm = max(b[:, 2].max() - b[:, 0].min(), b[:, 3].max() - b[:, 1].min()) / ppm
        scale.setdefault(r.design_id or "(none)", []).append(
            (ppm, input_size / (side_mm * (1 + 2 * margin)))
        )
    y = np.array([[c in r.labels for c in classes] for r in records], bool)
    inside = within_design(probs, y, classes, [r.design_id or "(none)" for r in records])
    out = {}
    for d, aucs, npos in zip(inside["designs"], inside["auroc"], inside["positives"], strict=True):
        a = np.array(scale.get(d, [(np.nan, np.nan)]))
        out[d] = {
            "photo_px_per_mm": float(np.median(a[:, 0])),
            "input_px_per_mm": float(np.median(a[:, 1])),
            "effective_px_per_mm": float(np.median(a.min(axis=1))),
            "auroc": {
                c: None if v is None or np.isnan(v) else v
                for c, v in zip(classes, aucs, strict=True)
            },
            "positives": dict(zip(classes, npos, strict=True)),
        }
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="a kito data synth folder")
    p.add_argument("--package", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--workers", type=int, default=1, help="processes rendering the twins")
    args = p.parse_args(argv)
    from qc_model.catalog import default_catalog_dir, load_catalog
    from qc_model.gate import check_photo
    from qc_model.package import read_meta
    from training.compare import score_package

    rows = label_visibility(args.data, args.workers)
    m = Manifest.read(args.data / "manifest.jsonl")
    records = list(m.records)
    classes = list(read_meta(args.package).classes)
    scores = score_package(args.package, records, args.data, classes)
    catalog = load_catalog(default_catalog_dir())
    gate = np.array(
        [
            check_photo(cv2.imread(str(args.data / r.image)), catalog[r.design_id]).passed
            for r in tqdm(records, desc="gate")
        ]
    )
    summary = summarise(records, scores.probs, scores.thresholds, classes, rows, gate)
    pre = read_meta(args.package).preprocess
    summary["by_design"] = resolution_by_design(
        records, scores.probs, classes, pre.input_size, pre.crop_margin
    )
    summary |= {"data": str(args.data), "version": m.header.version, "package": scores.version}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "visibility.json").write_text(json.dumps(rows))
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    head = " | ".join(f"ΔE>=6 px {_bin_name(lo, hi)}: n, recall" for lo, hi in BINS)
    print(f"| class | positives | {head} | AUROC all | AUROC visible (>= 5 px) |")
    print("|---" * (len(BINS) + 4) + "|")
    for c, s in summary["classes"].items():
        cells = []
        for b in s["by_visible_px"].values():
            rec = "-" if b["class_recall"] is None else f"{b['class_recall']:.2f}"
            cells.append(f"{b['n']}, {rec}")
        a, v = s["auroc_all"], s["auroc_visible"]
        print(
            f"| {c} | {s['positives']} | {' | '.join(cells)} | "
            f"{'-' if a is None else f'{a:.3f}'} | {'-' if v is None else f'{v:.3f}'} |"
        )
    for name, r in summary["any_defect"].items():
        print(
            f"any defect, {name}: recall {r['recall']:.3f} of {r['defective']}, "
            f"false-hold {r['false_hold']:.3f} of {r['good']}"
        )
    print(f"gate passes {summary['gate_pass_rate']:.3f} of the photos")
    print(f"\n| design | photo px/mm | input px/mm | effective | {' | '.join(classes)} |")
    print("|---" * (len(classes) + 4) + "|")
    for d, r in summary["by_design"].items():
        cells = [
            "-" if a is None else f"{a:.2f} ({r['positives'][c]})" for c, a in r["auroc"].items()
        ]
        print(
            f"| {d} | {r['photo_px_per_mm']:.2f} | {r['input_px_per_mm']:.2f} | "
            f"{r['effective_px_per_mm']:.2f} | {' | '.join(cells)} |"
        )


if __name__ == "__main__":
    main()
