"""INT8 recipes for one package: accuracy against FP32 on real photos and speed, in one run.

    python bench/bench_int8.py --package models/default --manifest DATA [--iters 40]

Each recipe is `training.int8_graph.quantize_onnx` with other settings, calibrated on the same
train photos (spread over the manifest's train split) and checked on all its val photos at the
package's own thresholds, as `kito quantize` checks:

- trunk, 7-bit weights, QOperator: what `kito quantize` and `kito export --int8` write;
- the same as QDQ (`--format qdq`);
- trunk, 8-bit weights: the same without reduce_range (saturates on CPUs without VNNI);
- convolutions only, stem and depthwise in float, QDQ, 8-bit: the recipe before 2026-11-27.

Latency is batch 1 and batch 8 at 2 threads, the recipes interleaved three times (median of the
three medians) so that a noisy neighbour hits all of them alike; speed-ups are against FP32 in
the same run. INT8 speed depends on the CPU, whose SIMD levels are printed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from qc_model.cpu import cpu_simd
from qc_model.manifest import Manifest
from qc_model.package import MODEL_FILE, load_package
from training.dataset import for_classes
from training.evaluate import targets_for
from training.int8_graph import quantize_onnx
from training.metrics import macro_f1
from training.quantize import load_inputs, run_probs, spread


def session(path: Path, threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def median_ms(sess: ort.InferenceSession, x: np.ndarray, iters: int) -> float:
    feed = {"input": x}
    for _ in range(3):
        sess.run(None, feed)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        sess.run(None, feed)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def stem_and_depthwise(model: Path) -> list[str]:
    convs = [n for n in onnx.load(str(model)).graph.node if n.op_type == "Conv"]
    dw = [n.name for n in convs if next((a.i for a in n.attribute if a.name == "group"), 1) > 1]
    return ([convs[0].name] if convs and convs[0].name not in dw else []) + dw


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--package", type=Path, required=True)
    ap.add_argument("--manifest", type=Path, required=True, help="train and val photos")
    ap.add_argument("--calibration", type=int, default=64)
    ap.add_argument("--iters", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)

    pkg = load_package(args.package)
    meta = pkg.meta
    if meta.surface is not None:
        # Its fused classes' thresholds apply to the fused scores, not to this graph's own.
        print(
            f"error: {args.package} has a surface branch, whose thresholds apply to the fused "
            "scores: compare a package without one (the package it was attached to)",
            file=sys.stderr,
        )
        return 2
    manifest = for_classes(Manifest.read(args.manifest), meta.classes, args.manifest)
    root = args.manifest if args.manifest.is_dir() else args.manifest.parent
    train, val = manifest.split("train"), manifest.split("val")
    calib = load_inputs(root, spread(train, args.calibration), meta.preprocess, "calibration")
    val_x = load_inputs(root, val, meta.preprocess, "val")
    targets = targets_for(val, meta.classes, meta.task)
    thr = np.array([meta.thresholds[c].threshold for c in meta.classes], np.float32)
    fp32_path = args.package / MODEL_FILE
    old_float = stem_and_depthwise(fp32_path)
    recipes = {
        "trunk, 7-bit, QOperator (kito quantize)": dict(fmt="qoperator"),
        "trunk, 7-bit, QDQ (--format qdq)": dict(fmt="qdq"),
        "trunk, 8-bit, QOperator": dict(fmt="qoperator", reduce_range=False),
        "convs only, stem + depthwise float, QDQ, 8-bit (before)": dict(
            fmt="qdq",
            reduce_range=False,
            op_types=("Conv", "MatMul", "Gemm"),
            keep_float=old_float,
        ),
    }
    ref = run_probs(pkg.session, val_x)
    f1_ref = macro_f1(ref, targets, list(thr))
    rows: dict[str, dict[str, float]] = {"FP32": {"f1": f1_ref}}
    sessions = {"FP32": session(fp32_path, args.threads)}
    with tempfile.TemporaryDirectory() as tmp:
        for k, (name, kw) in enumerate(recipes.items()):
            path = Path(tmp) / f"r{k}.onnx"
            quantize_onnx(fp32_path, path, calib, **kw)  # type: ignore[arg-type]
            sessions[name] = session(path, args.threads)
            p = run_probs(sessions[name], val_x)
            dp = np.abs(p - ref)
            rows[name] = {
                "f1": macro_f1(p, targets, list(thr)),
                "mean_dp": float(dp.mean()),
                "max_dp": float(dp.max()),
                "cross": int(((p >= thr) != (ref >= thr)).any(1).sum()),
            }
        x1, x8 = np.ascontiguousarray(val_x[:1]), np.ascontiguousarray(val_x[:8])
        b1: dict[str, list[float]] = {k: [] for k in sessions}
        b8: dict[str, list[float]] = {k: [] for k in sessions}
        for _ in range(3):
            for name, sess in sessions.items():
                b1[name].append(median_ms(sess, x1, args.iters))
                b8[name].append(median_ms(sess, x8, max(5, args.iters // 4)) / 8)

    t1 = {k: statistics.median(v) for k, v in b1.items()}
    t8 = {k: statistics.median(v) for k, v in b8.items()}
    print(
        f"package {meta.version}, {len(val)} val photos, {len(calib)} calibration photos, "
        f"{args.threads} threads, onnxruntime {ort.__version__}, CPU {cpu_simd()}"
    )
    print(
        "| recipe | val macro-F1 (Δ points) | mean / max \\|Δp\\| | photos crossing a threshold "
        "| b1 ms | b8 ms/image | speed-up b1 / b8 |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, r in rows.items():
        d = "" if name == "FP32" else f" ({(r['f1'] - f1_ref) * 100:+.2f})"
        dp = "" if name == "FP32" else f"{r['mean_dp']:.4f} / {r['max_dp']:.3f}"
        cross = "" if name == "FP32" else str(r["cross"])
        print(
            f"| {name} | {r['f1']:.4f}{d} | {dp} | {cross} | {t1[name]:.2f} | {t8[name]:.2f} "
            f"| {t1['FP32'] / t1[name]:.2f}x / {t8['FP32'] / t8[name]:.2f}x |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
