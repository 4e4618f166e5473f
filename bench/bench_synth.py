"""Throughput of the synthetic renderer: photos/s at 1024 px and 12 MP, 1 process and a pool.

python bench/bench_synth.py [--count-1024 200] [--count-12mp 6] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from qc_model.catalog import default_catalog_dir
from training.synth.generate import SynthOptions, generate_dataset


def run(count: int, size: int, workers: int) -> float:
    out = Path(tempfile.mkdtemp(prefix="bench-synth-"))
    try:
        opts = SynthOptions(count=count, size=size, seed=123)
        t0 = time.perf_counter()
        generate_dataset(default_catalog_dir(), out, opts, workers=workers)
        return count / (time.perf_counter() - t0)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count-1024", type=int, default=200)
    ap.add_argument("--count-12mp", type=int, default=6)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print("| size | photos | workers | photos/s | s per 1000 photos |")
    print("| --- | --- | --- | --- | --- |")
    for size, count in ((1024, args.count_1024), (4000, args.count_12mp)):
        for workers in sorted({1, args.workers}):
            rate = run(count, size, workers)
            label = "1024 px" if size == 1024 else "4000x3000 (12 MP)"
            print(f"| {label} | {count} | {workers} | {rate:.2f} | {1000 / rate:.0f} |", flush=True)


if __name__ == "__main__":
    main()
