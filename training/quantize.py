"""INT8 static quantization of a model package (per-channel), refused if it costs accuracy."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from qc_model.cpu import cpu_simd, has_vnni
from qc_model.errors import DataError
from qc_model.manifest import Manifest, Record, sha256_file
from qc_model.package import (
    MODEL_FILE,
    SURFACE_FILE,
    PackageMeta,
    load_package,
    read_meta,
)
from qc_model.preprocess import PreprocessConfig, preprocess
from training.int8_graph import INT8_FORMATS, quantize_onnx
from training.metrics import macro_f1
from training.package_io import ExportError, finish_package, staged_package

MAX_F1_DROP = 0.01  # one point of macro-F1


def load_inputs(
    root: Path, records: Sequence[Record], cfg: PreprocessConfig, desc: str
) -> NDArray[np.float32]:
    """Preprocessed (N, 3, S, S) inputs of the records' photos, as serving would see them."""
    out = []
    for r in tqdm(records, desc=desc, unit="photo", leave=False):
        img = cv2.imread(str(root / r.image), cv2.IMREAD_COLOR)
        if img is None:
            raise DataError(f"{root / r.image}: cannot be read")
        out.append(preprocess(img, cfg)[0])
    return np.stack(out)


def _session(path: Path, threads: int = 2) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def run_probs(session: Any, inputs: NDArray[np.float32], batch: int = 16) -> NDArray[np.float32]:
    parts = [
        session.run(["probs"], {"input": inputs[i : i + batch]})[0]
        for i in range(0, len(inputs), batch)
    ]
    return np.concatenate(parts)


def spread(records: Sequence[Record], count: int) -> list[Record]:
    """`count` records spread evenly over the list (designs are usually grouped in order)."""
    if len(records) <= count:
        return list(records)
    idx = np.linspace(0, len(records) - 1, count).round().astype(int)
    return [records[i] for i in idx]


def quantize_package(
    package_dir: Path,
    manifest_path: Path,
    out: Path,
    calibration_count: int = 64,
    max_drop: float = MAX_F1_DROP,
    fmt: str = "qoperator",
    weight_bits: int = 7,
) -> PackageMeta:
    """INT8 copy of an FP32 package, calibrated on training photos, checked on validation.

    A surface branch is quantized too and the check compares the fused probabilities, photo by
    photo as serving scores them (training.quantize_branch); an anomaly model is copied as it is,
    unless it reads the branch's cells (then it goes without, like design references).

    weight_bits 7 (reduce_range) runs the same on every CPU; 8 is closer to FP32 but saturates
    without VNNI (qc_model.cpu), so it is made and checked only on a CPU with VNNI and the
    package records that it needs one (`requires_vnni`: load_package refuses it elsewhere).
    """
    from training.dataset import for_classes
    from training.evaluate import targets_for
    from training.quantize_branch import (
        BRANCH,
        branch_tiles,
        copy_anomaly,
        served_probs,
        stem_conv,
    )

    if fmt not in INT8_FORMATS:
        raise DataError(f"INT8 format must be one of {INT8_FORMATS}, got {fmt!r}")
    if weight_bits not in (7, 8):
        raise DataError(f"weight bits must be 7 or 8, got {weight_bits}")
    if weight_bits == 8 and not has_vnni():
        raise DataError(
            f"8-bit weights saturate on a CPU without VNNI (this one: {cpu_simd()}): they "
            "can be neither checked nor served here; use --weight-bits 7"
        )
    full_range = {"reduce_range": weight_bits == 7}
    fp32 = load_package(package_dir)
    if fp32.meta.precision != "fp32":
        raise DataError(f"{package_dir}: already {fp32.meta.precision}; quantize an FP32 package")
    branch = fp32.meta.surface
    if branch is not None and branch.config.tile is None:
        raise DataError(f"{package_dir}: its surface branch scores whole crops, not tiles")
    if out.exists():
        raise DataError(f"{out}: already exists; choose a new package folder")
    manifest = for_classes(Manifest.read(manifest_path), fp32.meta.classes, manifest_path)
    root = manifest_path if manifest_path.is_dir() else manifest_path.parent
    train, val = manifest.split("train"), manifest.split("val")
    if not train or not val:
        raise DataError(f"{manifest_path}: INT8 needs photos in both 'train' and 'val'")
    # Design references are the FP32 network's embeddings: an INT8 network's differ, so the
    # copy goes without them (kito identity fit adds its own).
    cfg, meta = fp32.meta.preprocess, fp32.meta.model_copy(update={"identity": None})
    # An anomaly model that reads the branch's cells holds the FP32 branch's features: the
    # same goes for it (kito anomaly fit --source branch on the INT8 package adds its own).
    anomaly_carried = fp32.anomaly is None or not fp32.anomaly.from_branch
    if not anomaly_carried:
        meta = meta.model_copy(update={"anomaly": None})
    calib_records = spread(train, calibration_count)
    calib = load_inputs(root, calib_records, cfg, "int8 calibration")
    targets = targets_for(val, meta.classes, meta.task)
    thresholds = [meta.thresholds[c].threshold for c in meta.classes]
    thr = np.asarray(thresholds, dtype=np.float32)

    with staged_package(out) as tmp:
        quantize_onnx(package_dir / MODEL_FILE, tmp / MODEL_FILE, calib, fmt=fmt, **full_range)
        if anomaly_carried:
            copy_anomaly(package_dir, tmp)
        if branch is None:
            val_x = load_inputs(root, val, cfg, "int8 check")
            p_fp32 = run_probs(fp32.session, val_x)
            p_int8 = run_probs(_session(tmp / MODEL_FILE), val_x)
        else:
            tiles = branch_tiles(package_dir, root, calib_records)
            quantize_onnx(
                package_dir / SURFACE_FILE,
                tmp / SURFACE_FILE,
                tiles,
                fmt,
                keep_float=stem_conv(package_dir / SURFACE_FILE),
                **full_range,
                **BRANCH,
            )
            surface = branch.model_copy(update={"onnx_sha256": sha256_file(tmp / SURFACE_FILE)})
            finish_package(tmp, meta.model_copy(update={"surface": surface}))
            p_fp32 = served_probs(package_dir, root, val)
            p_int8 = served_probs(tmp, root, val)
            meta = read_meta(tmp)
        f1_fp32 = macro_f1(p_fp32, targets, thresholds)
        f1_int8 = macro_f1(p_int8, targets, thresholds)
        dp = np.abs(p_fp32 - p_int8)
        drop = f1_fp32 - f1_int8
        if not drop <= max_drop:  # also refuses NaN
            raise ExportError(
                f"INT8 loses {drop * 100:.2f} points of macro-F1 on {len(val)} validation photos "
                f"({f1_fp32:.4f} -> {f1_int8:.4f}; limit {max_drop * 100:.1f}); not written"
            )
        report = {
            "macro_f1_fp32": f1_fp32,
            "macro_f1_int8": f1_int8,
            "macro_f1_drop": drop,
            "format": fmt,
            "weight_bits": weight_bits,
            "checked_on_cpu": cpu_simd(),
            "mean_abs_dprob": float(dp.mean()),
            "max_abs_dprob": float(dp.max()),
            "photos_crossing_a_threshold": int(((p_fp32 >= thr) != (p_int8 >= thr)).any(1).sum()),
            "calibration_photos": len(calib),
            "validation_photos": len(val),
            "fp32_sha256": fp32.meta.onnx_sha256,
        }
        if fp32.meta.identity is not None:
            report["design_references"] = "not carried over: fit them again (kito identity fit)"
        if not anomaly_carried:
            report["anomaly_model"] = (
                "not carried over: its banks hold the FP32 branch's features; fit them again "
                "(kito anomaly fit --source branch)"
            )
        if branch is not None:
            report["surface_fp32_sha256"] = branch.onnx_sha256
            report["checked_on"] = "fused probabilities, each photo as serving scores it"
        new = meta.model_copy(
            update={
                "name": out.name,
                "version": f"{meta.version}-int8",
                "precision": "int8",
                "requires_vnni": weight_bits == 8,
                "metrics": {**meta.metrics, "int8": report},
            }
        )
        new = finish_package(tmp, new)
    return new
