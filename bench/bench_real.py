"""Learning from real photos, through the CLI as a user runs it: ELPV solar cells, binary task.

    nice -n 10 .venv/bin/python bench/bench_real.py --work /tmp/elpv-real

ELPV (pip install elpv-dataset, the `bench` extra; CC BY-NC-SA 4.0: benchmarks and tests only,
never in a bundled model) holds 2,624 electroluminescence photos of solar cells (300 x 300 px,
grey), each with the share of experts who judged it defective. A cell is defective when that
share is >= 0.5. Split 75 / 25, stratified by label (and cell type), seed 0, as in Deitsch et al.
(Solar Energy 2019: fine-tuned VGG-19 88.42 % accuracy). Each part is written as an ImageFolder
(functional/, defective/), then, as the README says:

    kito data import  (train part -> its own train/val/test; test part)
    kito data merge   (train part: test=train, so all of it learns or calibrates; test part: *=test)
    kito train        (no --config: the recipe the data calls for)
    kito eval         (--split test)

Prints accuracy, balanced accuracy, AUROC, the wall time of each step and, after them, the
test errors by how far the experts agreed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from elpv_data import elpv_cells, errors_by_agreement, kito, stratified_split

PUBLISHED = 0.8842  # Deitsch et al. 2019, fine-tuned VGG-19, same kind of split


def write_imagefolder(data: Path, cells: list[tuple[str, str, str]], folder: Path) -> None:
    for path, label, _ in cells:
        (folder / label).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data / path, folder / label / Path(path).name)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--work", type=Path, required=True, help="empty or new scratch folder")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="passed to kito train (default: none, the recipe as chosen)")  # fmt: skip
    args = ap.parse_args(argv)
    w = args.work
    if w.exists() and any(w.iterdir()):
        sys.exit(f"error: {w} is not empty")
    data, rows = elpv_cells()
    parts = stratified_split(rows, args.seed, good="functional")
    times: dict[str, float] = {}
    t_all = time.perf_counter()
    for name, cells in parts.items():
        write_imagefolder(data, cells, w / "folders" / name)
        times[f"import {name}"] = kito(
            "data", "import", str(w / "folders" / name), "--out", str(w / name),
            "--seed", str(args.seed),
        )  # fmt: skip
    times["merge"] = kito(
        "data", "merge", "--out", str(w / "all.jsonl"), f"{w / 'train'}:test=train",
        f"{w / 'test'}:*=test",
    )  # fmt: skip
    sets = [x for s in args.set for x in ("--set", s)]
    times["train"] = kito(
        "train", "--manifest", str(w / "all.jsonl"), "--out", str(w / "run"), *sets
    )
    times["eval"] = kito(
        "eval", "--checkpoint", str(w / "run" / "best.pt"), "--manifest", str(w / "all.jsonl"),
        "--split", "test", "--out", str(w / "report"),
    )  # fmt: skip
    total = time.perf_counter() - t_all
    s = json.loads((w / "report" / "metrics.json").read_text())["scores"]
    one = s.get("single_label", {})
    recipe = json.loads((w / "run" / "recipe.json").read_text())
    print(f"recipe: {recipe['config']} {' '.join(recipe['overrides'])}")
    print(
        f"ELPV test: {s['photos']} cells, accuracy {s['accuracy']:.4f} "
        f"(published VGG-19 {PUBLISHED:.4f}), balanced accuracy "
        f"{one.get('balanced_accuracy', float('nan')):.4f}, AUROC defective vs good "
        f"{one.get('auroc_defective', float('nan')):.4f}"
    )
    for step, sec in times.items():
        print(f"{step}: {sec:.1f} s wall")
    print(f"total: {total / 60:.1f} min wall")
    print("test errors (after the timed steps):")
    for line in errors_by_agreement(data, rows, w / "run" / "best.pt", w / "all.jsonl"):
        print(f"  {line}")


if __name__ == "__main__":
    main()
