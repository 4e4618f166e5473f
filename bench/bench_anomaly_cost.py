"""CPU cost of the anomaly model per photo, by stage, and how it scales with the bank size.

    nice -n 10 .venv/bin/python bench/bench_anomaly_cost.py --model PKG --manifest DATA \
        --photos 30 --banks 8192,4096,2048,1024

For `--photos` photos of the manifest (those whose design has a bank), one thread (the
service's SERVICE_THREADS_PER_INSPECTION; numpy's OpenBLAS too unless OPENBLAS_NUM_THREADS says
otherwise): the process CPU milliseconds (median per photo) of
the input (locate + crop + resample), the ONNX extractor, and the nearest-neighbour search
against the first N rows of the design's bank for each N of `--banks` (a coreset is chosen
greedily, so its first N rows are the coreset of size N). With `--auroc`, also the AUROC of
defective vs good photos per bank size and per image score (`--top-k`: the mean of the k
largest patch distances), each design's photos scored against its own bank, and their mean
over designs. `--proj 0,64,32` also searches each bank prefix in its own top principal
directions (0: the stored space), as `kito anomaly fit --proj-dim` stores it. `--judged`: only
the photos the photo gate passes (the service scores no other).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

# As `kito serve` runs (kito.cli.common.one_blas_thread): set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

T = TypeVar("T")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from qc_model.anomaly import AnomalyModel, bank_key, image_score, nearest_distances  # noqa: E402
from qc_model.anomaly_search import pca_projection  # noqa: E402
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
    ap.add_argument("--proj", default="0", help="projection dims to compare (0: none), e.g. 0,64")
    ap.add_argument("--judged", action="store_true", help="only photos the photo gate passes")
    args = ap.parse_args(argv)
    model = AnomalyModel(args.model, threads=1)
    root = args.manifest if args.manifest.is_dir() else args.manifest.parent
    records = [r for r in Manifest.read(args.manifest).records if model.covers(r.design_id)]
    if args.judged:
        from training.judged import gate_passed

        passed = gate_passed(records, root)
        records = [r for r, ok in zip(records, passed, strict=True) if ok]
    if not args.auroc:
        records = records[: args.photos]
    sizes = [int(s) for s in args.banks.split(",")]
    dims = [int(d) for d in args.proj.split(",")]
    cost: dict[str, list[float]] = {"input": [], "extractor": []}
    ks = [int(k) for k in args.top_k.split(",") if k] or [model.meta.config.top_k]
    Variant = tuple[int, int, int]  # (bank rows, projection dims, k)
    scores: dict[Variant, list[float]] = {(n, d, k): [] for n in sizes for d in dims for k in ks}
    projections: dict[tuple[str, int, int], Any] = {}
    for r in records:
        found = model.bank_for(r.design_id)
        assert found is not None
        key, bank_meta, _ = found
        image = read_image(root / r.image)
        inp, ms = cpu_ms(model.prepare, image, bank_meta.px_per_mm)
        cost["input"].append(ms)
        (cells, counted), ms = cpu_ms(model.features, inp)
        cost["extractor"].append(ms)
        q = model.project(cells[counted], key)
        for n in sizes:
            for dim in dims:
                bank = model.banks[key][:n]
                if dim:
                    if (key, n, dim) not in projections:
                        p = pca_projection(bank, dim)
                        projections[(key, n, dim)] = (p, np.ascontiguousarray(bank @ p))
                    p, bank = projections[(key, n, dim)]
                    qp, ms_p = cpu_ms(np.matmul, q, p)
                else:
                    qp, ms_p = q, 0.0
                d, ms = cpu_ms(nearest_distances, qp, bank)
                name = f"nearest, bank {len(bank)} x {bank.shape[1]}"
                cost.setdefault(name, []).append(ms + ms_p)
                for k in ks:
                    scores[(n, dim, k)].append(image_score(d, k))
    print(f"{len(records)} photos, {model.meta.feature_dim}-d features, one thread")
    for stage, values in cost.items():
        print(f"{stage:24} {statistics.median(values):8.1f} ms CPU (median)")
    if args.auroc:
        bad = np.array([r.labels not in ([], [GOOD]) for r in records])
        groups = np.array([bank_key("design", r.design_id or "*") for r in records])
        for (n, dim, k), values in scores.items():
            s = np.array(values)
            per = {g: auroc(s[groups == g], bad[groups == g]) for g in sorted(set(groups))}
            per = {g: a for g, a in per.items() if a == a}  # NaN: a design with one class
            text = ", ".join(f"{g} {a:.3f}" for g, a in per.items())
            mean = float(np.mean(list(per.values()))) if per else float("nan")
            print(f"bank {n}, proj {dim or 'none'}, top-{k}: mean AUROC {mean:.4f} ({text})")


if __name__ == "__main__":
    main()
