"""Throughput of the synthetic renderer: photos/s at 1024 px and 12 MP, 1 process and a pool.

python bench/bench_synth.py [--count-1024 200] [--count-12mp 6] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path

from qc_model.catalog import default_catalog_dir
from training.synth.generate import SynthOptions, generate_dataset


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run(count: int, size: int, workers: int) -> tuple[float, float]:
    """(photos per wall-clock second, CPU seconds per photo)."""
    out = Path(tempfile.mkdtemp(prefix="bench-synth-"))
    try:
        opts = SynthOptions(count=count, size=size, seed=123)
        t0, c0 = time.perf_counter(), _cpu()
        generate_dataset(default_catalog_dir(), out, opts, workers=workers)
        wall, cpu = time.perf_counter() - t0, _cpu() - c0
        return count / wall, cpu / count
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count-1024", type=int, default=200)
    ap.add_argument("--count-12mp", type=int, default=6)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    load = os.getloadavg()[0]
    print(f"# {platform.machine()}, {os.cpu_count()} cores, load average {load:.1f} at start")
    print("| size | photos | workers | photos/s (wall) | s per 1000 photos | CPU s/photo |")
    print("| --- | --- | --- | --- | --- | --- |")
    for size, count in ((1024, args.count_1024), (4000, args.count_12mp)):
        for workers in sorted({1, args.workers}):
            rate, cpu = run(count, size, workers)
            label = "1024x768" if size == 1024 else "4000x3000 (12 MP)"
            print(
                f"| {label} | {count} | {workers} | {rate:.2f} | {1000 / rate:.0f} | {cpu:.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
