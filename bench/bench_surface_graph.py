"""The surface branch's graph: any crop size against one made for its tiles, same run, a table.

    python bench/bench_surface_graph.py [--tile 96] [--tiles 40 8] [--iters 30]

`kito surface attach` exports the branch for its tiles when it is scored in tiles: "same"
padding fixed for the tile size and folded into the convolutions, height and width fixed
(training.surface.export_surface_onnx). Scored whole, the graph takes any size and computes its
padding on every run. Latency does not depend on what the weights learned, so the branch is the
ImageNet-initialised one with a fresh head. The two graphs' outputs are compared first.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from qc_model.cpu import cpu_simd
from qc_model.package import SURFACE_INPUT
from training.surface import build_surface_net, export_surface_onnx


def median_ms(sess: ort.InferenceSession, x: np.ndarray, iters: int) -> float:
    for _ in range(3):
        sess.run(None, {SURFACE_INPUT: x})
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        sess.run(None, {SURFACE_INPUT: x})
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tile", type=int, default=96)
    ap.add_argument("--tiles", type=int, nargs="+", default=[40, 8], help="batch sizes")
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)

    net = build_surface_net(4).eval()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = args.threads, 1
    opts.log_severity_level = 3
    with tempfile.TemporaryDirectory() as tmp:
        paths = {"any size": Path(tmp) / "any.onnx", "tiles": Path(tmp) / "tiles.onnx"}
        export_surface_onnx(net, paths["any size"])
        export_surface_onnx(net, paths["tiles"], tile=args.tile)
        sessions = {
            k: ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"])
            for k, p in paths.items()
        }
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (max(args.tiles), 3, args.tile, args.tile)).astype(np.float32)
    a, b = (s.run(None, {SURFACE_INPUT: x}) for s in sessions.values())
    diff = max(float(np.abs(p - q).max()) for p, q in zip(a, b, strict=True))
    times: dict[tuple[str, int], list[float]] = {}
    for _ in range(3):  # interleaved, so that a noisy neighbour hits both graphs alike
        for n in args.tiles:
            for name, sess in sessions.items():
                xs = np.ascontiguousarray(x[:n])
                times.setdefault((name, n), []).append(median_ms(sess, xs, args.iters))
    print(
        f"{args.tile} px tiles, {args.threads} threads, median of {args.iters} runs (x3, "
        f"interleaved), onnxruntime {ort.__version__}, CPU {cpu_simd()}; "
        f"max |output difference| {diff:.1e}"
    )
    print("| tiles per run | any size: ms | made for tiles: ms | speed-up |")
    print("| ---: | ---: | ---: | ---: |")
    for n in args.tiles:
        t_any = statistics.median(times["any size", n])
        t_tiles = statistics.median(times["tiles", n])
        print(f"| {n} | {t_any:.2f} | {t_tiles:.2f} | {t_any / t_tiles:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
