"""Inference latency: torch eager vs onnxruntime FP32 vs INT8 at batch 1 and 8, same run, a table.

    python bench/bench_inference.py [--threads 2] [--size 224] [--iters 40]

Latency does not depend on what the weights learned, so the network is the ImageNet-initialised
DefectNet with a fresh 7-class head, exported through the same code as `kito export` (or, with
--package, that package's graph). Two INT8 models from `training.int8_graph.quantize_onnx`,
calibrated on preprocessed photos of drawn pieces on the mat paper colour: the QOperator graph
that `kito quantize` and `kito export --int8` write by default, and its QDQ twin
(`--format qdq`). INT8 speed depends on the CPU (AVX-512 VNNI or not), which the output names.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import torch

from qc_model.cpu import cpu_simd
from qc_model.mat import DEFAULT_MAT
from qc_model.network import build_model
from qc_model.package import read_meta
from qc_model.preprocess import PreprocessConfig, preprocess
from training.export import CalibratedNet, export_onnx
from training.int8_graph import quantize_onnx


def photos(n: int, seed: int = 0) -> list[np.ndarray]:
    """Phone-sized photos of a drawn piece (a ring of beads) on the mat's paper colour."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        img = np.full((768, 1024, 3), DEFAULT_MAT.paper_rgb[::-1], np.uint8)
        cx, cy, r = (
            int(rng.integers(400, 620)),
            int(rng.integers(300, 460)),
            int(rng.integers(60, 140)),
        )
        for a in np.linspace(0, 2 * np.pi, 24, endpoint=False):
            colour = tuple(int(c) for c in rng.integers(20, 220, 3))
            cv2.circle(img, (int(cx + r * np.cos(a)), int(cy + r * np.sin(a))), 12, colour, -1)
        noise = rng.normal(0, 4, img.shape)
        out.append(np.clip(img + noise, 0, 255).astype(np.uint8))
    return out


def timed(fn: Callable[[], object], iters: int, warmup: int = 5) -> tuple[float, float, float]:
    """Median and minimum wall time and median process CPU time of one call, in ms.

    On a shared machine the minimum wall time is the run least disturbed by neighbours, and CPU
    time (all threads) counts the work done whatever the neighbours take.
    """
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(iters):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
    return statistics.median(wall), min(wall), statistics.median(cpu)


def session(path: Path, threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--size", type=int, default=None, help="input px (default: the package's, or 224)"
    )
    ap.add_argument("--iters", type=int, default=40)
    ap.add_argument("--calibration", type=int, default=32, help="photos for INT8 ranges")
    ap.add_argument(
        "--package", type=Path, default=None, help="time this package's FP32 model (e.g. "
        "models/default) instead of an ImageNet-initialised network with a new head",
    )  # fmt: skip
    ap.add_argument(
        "--compare", type=Path, default=None, help="also time this package's FP32 model (e.g. "
        "the same network before `kito repack`), in the same run",
    )  # fmt: skip
    args = ap.parse_args(argv)
    if args.size is None:
        args.size = 224 if args.package is None else read_meta(args.package).preprocess.input_size

    torch.set_num_threads(args.threads)
    cfg = PreprocessConfig(input_size=args.size)
    net = build_model(num_classes=7, task="multilabel", weights="imagenet").eval()
    wrapped = CalibratedNet(net, 1.0, "multilabel").eval()
    inputs = np.stack([preprocess(p, cfg)[0] for p in photos(max(8, args.calibration))])
    with tempfile.TemporaryDirectory() as tmp:
        fp32_path, int8_path = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        export_onnx(wrapped, args.size, fp32_path)
        qdq_path = Path(tmp) / "int8_qdq.onnx"
        if args.package is not None:  # the real model instead of an untrained head
            fp32_path = args.package / "model.onnx"
        calib = inputs[: args.calibration]
        quantize_onnx(fp32_path, int8_path, calib, fmt="qoperator")
        quantize_onnx(fp32_path, qdq_path, calib, fmt="qdq")
        fp32, int8 = session(fp32_path, args.threads), session(int8_path, args.threads)
        int8_qdq = session(qdq_path, args.threads)
        runners: dict[str, Callable[[np.ndarray], object]] = {
            "torch eager FP32": lambda x: wrapped(torch.from_numpy(x)),
            "onnxruntime FP32": lambda x: fp32.run(None, {"input": x}),
            "onnxruntime INT8 QOperator (kito quantize)": lambda x: int8.run(None, {"input": x}),
            "onnxruntime INT8 QDQ (--format qdq)": lambda x: int8_qdq.run(None, {"input": x}),
        }
        if args.compare is not None:
            other = session(args.compare / "model.onnx", args.threads)
            runners[f"onnxruntime FP32 ({args.compare})"] = lambda x: other.run(None, {"input": x})
        results: dict[tuple[str, int], tuple[float, float, float]] = {}
        with torch.inference_mode():
            for batch in (1, 8):
                x = np.ascontiguousarray(inputs[:batch])
                for name, run in runners.items():
                    results[name, batch] = timed(lambda run=run, x=x: run(x), args.iters)
        x8 = {"input": np.ascontiguousarray(inputs[:8])}
        ref = fp32.run(["probs"], x8)[0]
        agree = [np.abs(ref - s.run(["probs"], x8)[0]).max() for s in (int8, int8_qdq)]

    print(
        f"input {args.size}x{args.size}, {args.threads} threads, median of {args.iters} runs, "
        f"torch {torch.__version__}, onnxruntime {ort.__version__}, CPU {cpu_simd()}"
    )
    print(
        "| runtime | b1 ms/image median (min) | b1 CPU ms | b8 ms/image median (min) "
        "| b8 CPU ms/image | speed-up b1 / b8 |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    base1, base8 = results["onnxruntime FP32", 1][0], results["onnxruntime FP32", 8][0]
    for name in runners:
        (b1, b1min, c1), (b8, b8min, c8) = results[name, 1], results[name, 8]
        print(
            f"| {name} | {b1:.2f} ({b1min:.2f}) | {c1:.1f} | {b8 / 8:.2f} ({b8min / 8:.2f}) "
            f"| {c8 / 8:.1f} | {base1 / b1:.2f}x / {base8 / b8:.2f}x |"
        )
    print("speed-up: ORT FP32 median time / this runtime's median time")
    print(f"max |probs FP32 - INT8| on 8 photos: QOperator {agree[0]:.4f}, QDQ {agree[1]:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
