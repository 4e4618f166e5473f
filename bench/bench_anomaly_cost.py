"""CPU cost of the anomaly model per photo, by stage, and how it scales with the bank size.

    nice -n 10 .venv/bin/python bench/bench_anomaly_cost.py --model PKG --manifest DATA \
        --photos 30 --banks 8192,4096,2048,1024

For `--photos` photos of the manifest (those whose design has a bank), one thread (the
service's SERVICE_THREADS_PER_INSPECTION): the process CPU milliseconds (median per photo) of
the input (locate + crop + resample), the ONNX extractor, and the nearest-neighbour search
against the first N rows of the design's bank for each N of `--banks` (a coreset is chosen
greedily, so its first N rows are the coreset of size N). With `--auroc`, also the AUROC of
defective vs good photos per bank size and per image score (`--top-k`: the mean of the k
largest patch distances), each design's photos scored against its own bank.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from qc_model.anomaly import AnomalyModel, bank_key, image_score, nearest_distances  # noqa: E402
from qc_model.inference import read_image  # noqa: E402
from qc_model.manifest import GOOD, Manifest  # noqa: E402
from training.metrics import auroc  # noqa: E402


def cpu_ms(fn: Callable[..., T], *args: Any) -> tuple[T, float]:
    t0 = time.process_time()
    out = fn(*args)
    return out, (time.process_time() - t0) * 1e3


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True, help="package or anomaly model folder")
    ap.add_argument("--manifest", type=Path, required=True)
    ap.add_argument("--photos", type=int, default=30)
    ap.add_argument("--banks", default="8192,4096,2048,1024")
    ap.add_argument("--auroc", action="store_true", help="score every photo (slow)")
    ap.add_argument("--top-k", default="", help="image scores to compare, e.g. 1,3,10")
    args = ap.parse_args(argv)
    model = AnomalyModel(args.model, threads=1)
    root = args.manifest if args.manifest.is_dir() else args.manifest.parent
    records = [r for r in Manifest.read(args.manifest).records if model.covers(r.design_id)]
    if not args.auroc:
        records = records[: args.photos]
    sizes = [int(s) for s in args.banks.split(",")]
    cost: dict[str, list[float]] = {"input": [], "extractor": []}
    ks = [int(k) for k in args.top_k.split(",") if k] or [model.meta.config.top_k]
    scores: dict[tuple[int, int], list[float]] = {(n, k): [] for n in sizes for k in ks}
    for r in records:
        found = model.bank_for(r.design_id)
        assert found is not None
        key, bank_meta, _ = found
        image = read_image(root / r.image)
        inp, ms = cpu_ms(model.prepare, image, bank_meta.px_per_mm)
        cost["input"].append(ms)
        (cells, counted), ms = cpu_ms(model.features, inp)
        cost["extractor"].append(ms)
        q = cells[counted]
        for n in sizes:
            bank = model.banks[key][:n]
            d, ms = cpu_ms(nearest_distances, q, bank)
            cost.setdefault(f"nearest, bank {len(bank)}", []).append(ms)
            for k in ks:
                scores[(n, k)].append(image_score(d, k))
    print(f"{len(records)} photos, {model.meta.feature_dim}-d features, one thread")
    for stage, values in cost.items():
        print(f"{stage:24} {statistics.median(values):8.1f} ms CPU (median)")
    if args.auroc:
        bad = np.array([r.labels not in ([], [GOOD]) for r in records])
        groups = np.array([bank_key("design", r.design_id or "*") for r in records])
        for (n, k), values in scores.items():
            s = np.array(values)
            per = {g: auroc(s[groups == g], bad[groups == g]) for g in sorted(set(groups))}
            text = ", ".join(f"{g} AUROC {a:.4f}" for g, a in per.items())
            print(f"bank {n}, top-{k} mean: {text}")


if __name__ == "__main__":
    main()
