"""The anomaly model on real photos, learnt from good ones only: ELPV solar cells.

    nice -n 10 .venv/bin/python bench/bench_anomaly_real.py --work /tmp/elpv-bench

ELPV (pip install elpv-dataset, the `bench` extra; CC BY-NC-SA 4.0: benchmarks only, never in
a bundled model) holds 2,624 electroluminescence images of solar cells (300 x 300 px, gray),
each with the share of experts who judged it defective. Here a cell is defective when that
share is >= 0.5. The cells are split 75 / 25, stratified by label and cell type, seed 0. Each
split is written as a labelled batch (path,label,design: the cell type, mono or poly, a
property of the data), imported with `kito data import`, the anomaly model is fitted on the
train import's functional cells only (`kito anomaly fit`: banks from its train and test
splits, calibration on its val split), and scored on every cell of the test import with
`kito eval --package --split all`. Prints the AUROC of defective vs functional and the wall
time of each step.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
from pathlib import Path

from elpv_data import elpv_cells, kito, stratified_split


def write_batch(data: Path, cells: list[tuple[str, str, str]], folder: Path) -> Path:
    """A CSV batch (path,label,design) with copies of the images beside it."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    csv_path = folder / "labels.csv"
    with csv_path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "design"])
        for path, label, kind in cells:
            shutil.copyfile(data / path, folder / path)
            w.writerow([path, label, kind])
    return csv_path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True, help="empty or new scratch folder")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bank-size", type=int, default=8192)
    ap.add_argument("--top-k", type=int, default=3, help="image score: mean of k largest")
    ap.add_argument("--no-design", action="store_true", help="one bank for all cell types")
    args = ap.parse_args(argv)
    if args.work.exists() and any(args.work.iterdir()):
        sys.exit(f"error: {args.work} is not empty")
    data, rows = elpv_cells()
    splits = stratified_split(rows, args.seed, good="good")
    if args.no_design:
        splits = {k: [(p, lab, "") for p, lab, _ in v] for k, v in splits.items()}
    times: dict[str, float] = {}
    for name, cells in splits.items():
        batch = write_batch(data, cells, args.work / f"batch-{name}")
        times[f"import {name}"] = kito(
            "data", "import", str(batch), "--out", str(args.work / name), "--seed", str(args.seed)
        )
    pkg, report = args.work / "anomaly-pkg", args.work / "report"
    times["anomaly fit"] = kito(
        "anomaly", "fit", "--manifest", str(args.work / "train" / "manifest.jsonl"),
        "--out", str(pkg), "--bank-splits", "train,test", "--calibration-split", "val",
        "--bank-size", str(args.bank_size), "--top-k", str(args.top_k), "--seed", str(args.seed),
    )  # fmt: skip
    times["eval"] = kito(
        "eval", "--package", str(pkg), "--manifest", str(args.work / "test" / "manifest.jsonl"),
        "--split", "all", "--out", str(report),
    )  # fmt: skip
    a = json.loads((report / "metrics.json").read_text())["anomaly"]
    print(f"ELPV test: {a['covered']} cells, AUROC {a['overall']['auroc']:.4f}, "
          f"AP {a['overall']['ap']:.4f}")  # fmt: skip
    for row in a["by_design"]:
        print(f"  {row['group']}: {row['good']} good, {row['defective']} defective, "
              f"AUROC {row['auroc']:.4f}")  # fmt: skip
    for step, s in times.items():
        print(f"{step}: {s:.1f} s wall")


if __name__ == "__main__":
    main()
