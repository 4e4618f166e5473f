"""Per-stage CPU cost of inspecting one 12 MP phone JPEG, in process (no HTTP, no database).

    .venv/bin/python bench/bench_inspect.py --repeat 10

renders phone-like JPEGs the way bench/bench_serving.py does, then decodes and inspects each
one (decode at the service's DCT scale, then `ModelInspector.inspect`: gate, crop + ONNX, spec
checks, verdict and heatmap JSON) `--repeat` times on one request thread, with the inspector
built as the service builds it (its OpenCV and onnxruntime threads), and prints the median wall
milliseconds of each stage, the process CPU milliseconds spent in the functions inside them
(cProfile's cumulative times on a CPU clock, so nested rows overlap their parents), and the
process CPU time per photo. The numbers are
what docs/BENCHMARKS.md's per-stage table cites; the HTTP view is bench/bench_serving.py.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

# As `kito serve` runs (kito.cli.common.one_blas_thread): set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import cv2

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

from bench_serving import phone_jpegs  # noqa: E402

# (row label, module file suffix, function name) of the functions worth a row of their own.
FUNCTIONS = [
    ("decode: whole (decode_photo)", "qc_model/decode.py", "decode_photo"),
    ("decode: cv2.imdecode", "~", "<imdecode>"),
    ("gate: whole (check_photo)", "qc_model/gate.py", "check_photo"),
    ("gate: work copy (work_copy)", "qc_model/mat.py", "work_copy"),
    ("gate: find_mat (markers)", "qc_model/mat.py", "find_mat"),
    ("gate: locate_piece", "qc_model/locate.py", "locate_piece"),
    ("gate: sharpness", "qc_model/gate.py", "sharpness"),
    ("gate: exposure_checks", "qc_model/gate.py", "exposure_checks"),
    ("model: whole (crop + ONNX)", "serving/inspection/model_inspector.py", "_predict"),
    ("model: preprocess (crop)", "qc_model/preprocess.py", "preprocess"),
    ("model: ONNX run", "qc_model/inference.py", "run"),
    ("anomaly: whole", "serving/inspection/anomaly_view.py", "score_photos"),
    ("anomaly: extractor (ONNX)", "qc_model/anomaly.py", "run_extractor"),
    ("anomaly: search (extractor source)", "qc_model/anomaly.py", "distance_map"),
    ("anomaly: branch cells' search", "qc_model/anomaly.py", "score_cells"),
    ("model: branch cells + features", "qc_model/inference.py", "run_surface_cells"),
    ("verdict: decide", "qc_model/verdict.py", "decide"),
    ("spec: whole (run_spec_checks)", "qc_model/spec_checks.py", "run_spec_checks"),
    ("spec: measurement_mask", "qc_model/measure.py", "measurement_mask"),
    ("spec: measure_pieces", "qc_model/measure.py", "measure_pieces"),
    ("spec: colour check", "qc_model/spec_checks.py", "_colour_check"),
    ("spec: count check", "qc_model/spec_checks.py", "_count_check"),
    ("verdict: heatmap JSON", "serving/inspection/model_inspector.py", "_heatmap"),
]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=REPO / "models" / "default")
    p.add_argument(
        "--photos", type=int, default=4, help="distinct photos (4: bench_serving's default set)"
    )
    p.add_argument("--repeat", type=int, default=10, help="passes over the photos")
    p.add_argument("--size", type=int, default=4032)
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--decode-long-side", type=int, default=1000, help="KITO_DECODE_LONG_SIDE")
    p.add_argument(
        "--threads", type=int, help="onnxruntime intra-op threads (default: the service's)"
    )
    p.add_argument("--cv-threads", type=int, help="cv2.setNumThreads (default: the service's)")
    p.add_argument("--top", type=int, default=0, help="also print cProfile's top N (tottime)")
    args = p.parse_args(argv)

    from qc_model.catalog import load_catalog
    from qc_model.decode import DecodeLimits, decode_photo
    from serving.core.settings import load_settings
    from serving.inspection.model_inspector import ModelInspector, build_inspector
    from serving.inspection.submission import decode_plan_for

    catalog = load_catalog(load_settings().catalog_dir)
    # Built as the service builds it (which may set OpenCV's thread count), then overridden.
    inspector = build_inspector(args.model)
    if args.threads is not None:
        inspector = ModelInspector(args.model, threads=args.threads)
    if args.cv_threads is not None:
        cv2.setNumThreads(args.cv_threads)
    photos = phone_jpegs(args.photos, args.size, args.seed)
    base = DecodeLimits(target_long_side=args.decode_long_side)

    def one(design_id: str, data: bytes) -> dict[str, float]:
        design = catalog[design_id]
        plan = decode_plan_for(base, design, inspector)  # as serving.inspection.intake decodes
        t0 = time.perf_counter()
        decoded = decode_photo(data, limits=plan.limits(base))
        decode_ms = (time.perf_counter() - t0) * 1e3
        outcome = inspector.inspect([decoded], design, plan)
        return {"decode": decode_ms, **outcome.timings_ms}

    for design_id, data in photos:  # warm-up: lazy imports, ORT's first run
        one(design_id, data)
    stages: dict[str, list[float]] = defaultdict(list)
    n = args.repeat * len(photos)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    cpu0, wall0 = time.process_time(), time.perf_counter()
    cpu_each: list[float] = []  # process CPU ms of each inspection, for its median
    for _ in range(args.repeat):
        for design_id, data in photos:
            c0 = time.process_time()
            for stage, ms in one(design_id, data).items():
                stages[stage].append(ms)
            cpu_each.append((time.process_time() - c0) * 1e3)
    cpu_ms, wall_ms = (
        (time.process_time() - cpu0) * 1e3 / n,
        (time.perf_counter() - wall0) * 1e3 / n,
    )
    # A second pass under cProfile for the function rows (the profiler slows Python code). Its
    # clock is the process's CPU time, so time spent waiting for a core on a shared machine
    # does not count.
    prof = cProfile.Profile(time.process_time)
    prof.enable()
    for _ in range(args.repeat):
        for design_id, data in photos:
            one(design_id, data)
    prof.disable()
    print(f"{n} inspections ({len(photos)} photos x {args.repeat}) of {args.size} px JPEGs")
    print(f"designs: {', '.join(d for d, _ in photos)}")
    print(f"OpenCV threads {cv2.getNumThreads()}; load average {load} before the runs")
    print(
        f"per photo: wall {wall_ms:.1f} ms, process CPU {cpu_ms:.1f} ms (all threads), "
        f"p50 {statistics.median(cpu_each):.1f} ms\n"
    )
    print("| stage | median ms | mean ms |\n| --- | ---: | ---: |")
    for k, v in stages.items():
        print(f"| {k} | {statistics.median(v):.1f} | {statistics.fmean(v):.1f} |")
    stats = pstats.Stats(prof)
    cumulative: dict[tuple[str, str], float] = defaultdict(float)
    for (file, _line, fn), row in stats.stats.items():  # type: ignore[attr-defined]
        cumulative[(file, fn)] += row[3]  # cumulative seconds
    print("\n| function (cumulative, cProfile) | CPU ms per photo |\n| --- | ---: |")
    for label, suffix, name in FUNCTIONS:
        total = sum(
            t for (file, fn), t in cumulative.items() if fn == name and file.endswith(suffix)
        )
        print(f"| {label} | {1e3 * total / n:.1f} |")
    if args.top:
        print()
        stats.sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
