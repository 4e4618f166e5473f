"""What a package's surface branch costs per photo, next to the defect network, in one run.

    python bench/bench_surface.py --package models/default --data data/test-s2 [--count 200]

Each photo goes through `Inferencer.predict` one at a time (batch 1, as the service runs
inspections), which times its stages separately: preprocess (locate, crops), the defect
network and the surface branch. The branch's cost grows with the crop's area, so it is also
given per crop-side band. Run on real (or synthetic) photos: the crop sizes are what matter.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from qc_model.inference import Inferencer
from qc_model.manifest import Manifest

BANDS = [("< 160", 160), ("160-319", 320), ("320-639", 640), (">= 640", 10**9)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--package", type=Path, default=Path("models/default"))
    ap.add_argument("--data", type=Path, required=True, help="data set folder or manifest")
    ap.add_argument("--count", type=int, default=200, help="photos (spread over the set)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    manifest_path = args.data / "manifest.jsonl" if args.data.is_dir() else args.data
    m = Manifest.read(manifest_path)
    root = manifest_path.parent
    records = list(m.records)
    step = max(1, len(records) // args.count)
    records = records[::step][: args.count]
    inf = Inferencer(args.package, threads=args.threads, batch_size=1)
    if inf.meta.surface is None:
        sys.exit(f"{args.package}: this package has no surface branch")
    for r in records[:5]:  # warm-up: sessions, allocators
        inf.predict(root / r.image)
    stages: dict[str, list[float]] = defaultdict(list)
    by_side: dict[str, list[float]] = defaultdict(list)
    for r in records:
        p = inf.predict(root / r.image)[0]
        for k, v in p.timings_ms.items():
            stages[k].append(v)
        side = p.crop_box[2] - p.crop_box[0]
        band = (
            "< 160"
            if side < 160
            else "160-319"
            if side < 320
            else "320-639"
            if side < 640
            else ">= 640"
        )
        by_side[band].append(p.timings_ms.get("surface", float("nan")))
    total = [sum(t) for t in zip(*stages.values(), strict=True)]
    cpu = platform.processor() or platform.machine()
    print(f"# {args.package} on {len(records)} photos of {manifest_path}")
    print(f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {cpu}, {args.threads} threads, batch 1")
    print("\n| stage | median ms | p90 ms |\n| --- | ---: | ---: |")
    rows: list[tuple[str, list[float]]] = [*stages.items(), ("total", total)]
    for name, times in rows:
        print(f"| {name} | {statistics.median(times):.2f} | {np.percentile(times, 90):.2f} |")
    net, branch = statistics.median(stages["inference"]), statistics.median(stages["surface"])
    print(f"\nsurface / defect network (medians): {branch / net:.2f}x")
    print("\n| crop side (px) | photos | surface median ms |\n| --- | ---: | ---: |")
    for band, _ in BANDS:
        if by_side[band]:
            print(f"| {band} | {len(by_side[band])} | {statistics.median(by_side[band]):.2f} |")


if __name__ == "__main__":
    main()
