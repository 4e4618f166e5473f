"""Piece localisation against the synthetic renderer's ground truth: box IoU and time per photo.

python bench/bench_locate.py --count 200 --size 1024 --seed 7
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from qc_model.catalog import default_catalog_dir
from qc_model.locate import locate_piece
from qc_model.manifest import Manifest
from qc_model.mat import detect_mat


def box_iou(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=200)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--data", type=Path, default=None, help="existing synthetic data set")
    a = p.parse_args()
    root = a.data
    if root is None:
        from training.synth.generate import SynthOptions, generate_dataset

        root = Path(tempfile.mkdtemp(prefix="bench-locate-"))
        opts = SynthOptions(count=a.count, size=a.size, seed=a.seed)
        generate_dataset(default_catalog_dir(), root, opts, workers=0)
    ious, t_mat, t_loc = [], [], []
    for r in Manifest.read(root).records:
        img = cv2.imread(str(root / r.image))
        boxes = [pc["bbox_px"] for pc in r.meta["pieces"]]
        truth = tuple(f(b[i] for b in boxes) for i, f in enumerate((min, min, max, max)))
        t0 = time.perf_counter()
        mat = detect_mat(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
        t1 = time.perf_counter()
        loc = locate_piece(img, mat)
        t2 = time.perf_counter()
        t_mat.append(t1 - t0)
        t_loc.append(t2 - t1)
        ious.append(box_iou(loc.bbox, truth) if loc else 0.0)
    v = np.array(ious)
    print(f"{len(v)} photos from {root}")
    print("| median IoU | IoU >= 0.5 | IoU >= 0.7 | locate ms (median) | detect_mat ms (median) |")
    print("|---|---|---|---|---|")
    print(
        f"| {np.median(v):.3f} | {np.mean(v >= 0.5):.1%} | {np.mean(v >= 0.7):.1%} | "
        f"{1000 * np.median(t_loc):.1f} | {1000 * np.median(t_mat):.1f} |"
    )


if __name__ == "__main__":
    main()
