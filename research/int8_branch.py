"""INT8 recipes for a package's surface branch: how far each moves what the service decides on,
and how much CPU a tile it saves, in one run.

    python -m research.int8_branch --package models/default \
        --calibration data/quant-s3-2k --check data/val-s28-400 --photos 200

Each recipe is `training.int8_graph.quantize_onnx` of the branch with other settings, calibrated
on the same tiles (`training.quantize_branch.branch_tiles` of the calibration set's train
photos, as `kito quantize` takes them). Each photo of the check set's val split is prepared once
(crop, tiles) and its tiles run through the FP32 branch and every recipe; reported per recipe:

- the fused probabilities' change (mean and max |dp|) and the photos whose fused score crosses
  one of the package's review or fail thresholds (the decisions that could change);
- the cell features' relative change over the counted cells (what a branch-sourced anomaly
  model scores: its banks would have to be fitted again, but a large change means the INT8
  branch describes surfaces differently);
- CPU ms a 96 px tile, one thread, runs of 8 tiles (median of 30 runs after warm-up).

Found: see research/README.md.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from tqdm import tqdm

from qc_model.inference import Inferencer, read_image
from qc_model.manifest import Manifest, sha256_file
from qc_model.package import SURFACE_FILE, read_meta
from qc_model.package_graphs import feature_runner, open_session
from qc_model.surface import counted_cells, counted_features, scores_of_cells
from training.int8_graph import quantize_onnx
from training.package_io import finish_package
from training.quantize import spread
from training.quantize_branch import BRANCH, branch_tiles, stem_conv

KEEP = ("model.onnx", "package.json", "MODEL_CARD.md", SURFACE_FILE)


def low_nodes(model: Path, prefix: str = "/net/low/") -> list[str]:
    """Node names of the branch's stride <= 8 part (stem and first blocks)."""
    return [n.name for n in onnx.load(str(model)).graph.node if n.name.startswith(prefix)]


def recipes(fp32: Path) -> dict[str, dict[str, object]]:
    return {
        "7-bit, QOperator (kito quantize)": {"reduce_range": True},
        "8-bit, QOperator": {"reduce_range": False},
        "7-bit, QDQ": {"fmt": "qdq", "reduce_range": True},
        "7-bit, stem conv float": {"reduce_range": True, "keep_float": stem_conv(fp32)},
        "7-bit, stride-8 part float": {"reduce_range": True, "keep_float": low_nodes(fp32)},
        "8-bit, stem conv float": {"reduce_range": False, "keep_float": stem_conv(fp32)},
        "8-bit, stride-8 part float": {"reduce_range": False, "keep_float": low_nodes(fp32)},
    }


def drift(
    ref: np.ndarray,
    probs: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    ref_feats: list[np.ndarray],
    feats: list[np.ndarray],
) -> dict[str, float]:
    """How far `probs` (N, K) moved from `ref`: mean and max |dp|, the photos where some class
    crossed its review (`low`) or fail (`high`) edge, and the median over photos of the cell
    features' relative change ||f - f_ref|| / ||f_ref||."""
    dp = np.abs(probs - ref)
    cross = (((probs >= low) != (ref >= low)) | ((probs >= high) != (ref >= high))).any(1)
    rel = [
        float(np.linalg.norm(a - b) / max(float(np.linalg.norm(b)), 1e-9))
        for a, b in zip(feats, ref_feats, strict=True)
    ]
    return {
        "mean_dp": float(dp.mean()),
        "max_dp": float(dp.max()),
        "crossing": int(cross.sum()),
        "feature_change": float(np.median(rel)),
    }


def tile_ms(path: Path, x: np.ndarray, runs: int = 30) -> float:
    sess = open_session(path, 1)
    name = sess.get_inputs()[0].name
    for _ in range(5):
        sess.run(None, {name: x})
    ts = []
    for _ in range(runs):
        t0 = time.process_time()
        sess.run(None, {name: x})
        ts.append(time.process_time() - t0)
    return float(np.median(ts) * 1e3 / len(x))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--package", type=Path, required=True)
    ap.add_argument("--calibration", type=Path, required=True, help="its train split calibrates")
    ap.add_argument("--check", type=Path, required=True, help="its val split is compared")
    ap.add_argument("--photos", type=int, default=200, help="val photos compared (spread)")
    ap.add_argument("--calibration-photos", type=int, default=64)
    args = ap.parse_args(argv)

    meta = read_meta(args.package)
    sm = meta.surface
    if sm is None or sm.config.tile is None:
        ap.error(f"{args.package}: no tiled surface branch")
    croot = args.calibration if args.calibration.is_dir() else args.calibration.parent
    calib = spread(Manifest.read(args.calibration).split("train"), args.calibration_photos)
    tiles = branch_tiles(args.package, croot, calib)
    check = Manifest.read(args.check)
    root = args.check if args.check.is_dir() else args.check.parent
    val = spread(check.split("val"), args.photos)
    fp32_branch = args.package / SURFACE_FILE
    x8 = tiles[:8]

    with tempfile.TemporaryDirectory() as tmp:
        graphs = {"FP32": fp32_branch}
        for name, kw in recipes(fp32_branch).items():
            out = Path(tmp) / f"{len(graphs)}.onnx"
            quantize_onnx(fp32_branch, out, tiles, **kw, **BRANCH)  # type: ignore[arg-type]
            graphs[name] = out
        speed = {name: tile_ms(g, x8) for name, g in graphs.items()}
        # One FP32 package without its anomaly model prepares the photos and fuses the scores.
        pkg = Path(tmp) / "pkg"
        pkg.mkdir()
        for f in KEEP:
            if (args.package / f).is_file():
                shutil.copyfile(args.package / f, pkg / f)
        finish_package(pkg, meta.model_copy(update={"anomaly": None, "identity": None}))
        inf = Inferencer(pkg, threads=1)
        sessions = {name: open_session(g, 1) for name, g in graphs.items()}
        bands = {c: (t.review_low, t.review_high) for c, t in meta.thresholds.items()}
        probs: dict[str, list[np.ndarray]] = {n: [] for n in graphs}
        feats: dict[str, list[np.ndarray]] = {n: [] for n in graphs}
        for r in tqdm(val, desc="photos", unit="photo"):
            prep = inf.prepare(read_image(root / r.image), design=r.design_id)
            assert prep.surface is not None
            base, _ = inf.run(prep.tensor[None])
            for name, sess in sessions.items():
                run, kept = feature_runner(sess)
                cells, count = counted_cells(run, prep.surface, prep.surface_piece, sm.config)
                logits, _ = scores_of_cells(cells, count)
                probs[name].append(inf.fuse(base[0], logits, r.design_id))
                feats[name].append(counted_features(count, kept, sm.config))
    ref_p, ref_f = np.stack(probs["FP32"]), feats["FP32"]
    lo = np.array([bands[c][0] for c in inf.classes])
    hi = np.array([bands[c][1] for c in inf.classes])
    print(
        f"{len(val)} val photos of {args.check}; calibration: {len(tiles)} tiles of "
        f"{len(calib)} photos; fp32 branch {sha256_file(fp32_branch)[:12]}"
    )
    print(
        "| branch | mean / max abs dp | photos crossing a band edge | feature change (median rel.) "
        "| ms a tile | speed-up |\n| --- | ---: | ---: | ---: | ---: | ---: |"
    )
    for name in graphs:
        d = drift(ref_p, np.stack(probs[name]), lo, hi, ref_f, feats[name])
        print(
            f"| {name} | {d['mean_dp']:.4f} / {d['max_dp']:.3f} | {d['crossing']} "
            f"| {d['feature_change']:.3f} | {speed[name]:.3f} "
            f"| {speed['FP32'] / speed[name]:.2f}x |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
