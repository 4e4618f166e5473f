"""INT8 static quantization of a model package (per-channel), refused if it costs accuracy."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from qc_model.errors import DataError
from qc_model.manifest import Manifest, Record
from qc_model.package import MODEL_FILE, PackageMeta, load_package
from qc_model.preprocess import PreprocessConfig, preprocess
from training.export import ExportError, finish_package
from training.metrics import macro_f1

MAX_F1_DROP = 0.01  # one point of macro-F1
# Only the heavy ops: quantizing the final sigmoid/softmax would round probabilities to 1/255
# steps and move photos across thresholds for no speed gain.
QUANTIZED_OPS = ["Conv", "MatMul", "Gemm"]


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


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over preprocessed inputs, one photo a call."""

    def __init__(self, inputs: NDArray[np.float32]) -> None:
        self._iter: Iterator[dict[str, NDArray[np.float32]]] = iter(
            {"input": x[None]} for x in inputs
        )

    def get_next(self) -> dict[str, NDArray[np.float32]] | None:
        return next(self._iter, None)


def float_convs(model_path: Path) -> list[str]:
    """Convolutions that stay in float: the stem and the depthwise ones.

    The stem sees the normalised image and, with BatchNorm folded in, its weights and the
    depthwise ones spread over ranges INT8 resolves poorly. On a trained 10-class package
    (docs/BENCHMARKS.md) quantizing them too tripled the mean probability error (0.017 -> 0.064)
    and cost more than a point of macro-F1; the 1x1 convolutions carry most of the FLOPs anyway.
    """
    import onnx

    convs = [n for n in onnx.load(str(model_path)).graph.node if n.op_type == "Conv"]
    depthwise = [
        n.name for n in convs if next((a.i for a in n.attribute if a.name == "group"), 1) > 1
    ]
    stem = [convs[0].name] if convs and convs[0].name not in depthwise else []
    return stem + depthwise


INT8_FORMATS = ("qoperator", "qdq")


def quantize_onnx(
    fp32: Path,
    int8: Path,
    calibration: NDArray[np.float32],
    keep_sensitive_float: bool = True,
    fmt: str = "qdq",
) -> None:
    """Static INT8: per-channel weights, MinMax ranges from `calibration`.

    fmt "qdq" (default) writes Quantize/DequantizeLinear pairs around the quantized ops for the
    runtime to fuse; "qoperator" writes integer QLinearConv nodes. With the stem and depthwise
    convolutions kept in float neither was reliably faster than FP32 on this CPU; quantizing
    every convolution was 1.5x faster but cost ~5 points of validation macro-F1
    (bench/bench_inference.py --package models/default, docs/BENCHMARKS.md).
    keep_sensitive_float leaves `float_convs` in float: slower, much closer to FP32.
    """
    if fmt not in INT8_FORMATS:
        raise DataError(f"INT8 format must be one of {INT8_FORMATS}, got {fmt!r}")
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        # Folds constants and infers shapes so that every Conv gets a quantization range.
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(int8),
            _Reader(calibration),  # type: ignore[arg-type]
            quant_format=QuantFormat.QDQ if fmt == "qdq" else QuantFormat.QOperator,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=QUANTIZED_OPS,
            nodes_to_exclude=float_convs(prepared) if keep_sensitive_float else [],
        )


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


def _spread(records: Sequence[Record], count: int) -> list[Record]:
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
    fmt: str = "qdq",
) -> PackageMeta:
    """INT8 copy of an FP32 package, calibrated on training photos, checked on validation."""
    from training.dataset import for_classes
    from training.evaluate import targets_for

    fp32 = load_package(package_dir)
    if fp32.meta.precision != "fp32":
        raise DataError(f"{package_dir}: already {fp32.meta.precision}; quantize an FP32 package")
    if fp32.meta.surface is not None:
        # Its thresholds were chosen on the fused scores, which the check below cannot see.
        raise DataError(
            f"{package_dir}: has a surface branch; quantize the package it was attached to, "
            "then attach the branch to the INT8 package (kito surface attach)"
        )
    if out.exists():
        raise DataError(f"{out}: already exists; choose a new package folder")
    manifest = for_classes(Manifest.read(manifest_path), fp32.meta.classes, manifest_path)
    root = manifest_path if manifest_path.is_dir() else manifest_path.parent
    train, val = manifest.split("train"), manifest.split("val")
    if not train or not val:
        raise DataError(f"{manifest_path}: INT8 needs photos in both 'train' and 'val'")
    cfg, meta = fp32.meta.preprocess, fp32.meta
    calib = load_inputs(root, _spread(train, calibration_count), cfg, "int8 calibration")
    val_x = load_inputs(root, val, cfg, "int8 check")
    targets = targets_for(val, meta.classes, meta.task)
    thresholds = [meta.thresholds[c].threshold for c in meta.classes]

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        quantize_onnx(package_dir / MODEL_FILE, tmp / MODEL_FILE, calib, fmt=fmt)
        f1_fp32 = macro_f1(run_probs(fp32.session, val_x), targets, thresholds)
        f1_int8 = macro_f1(run_probs(_session(tmp / MODEL_FILE), val_x), targets, thresholds)
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
            "calibration_photos": len(calib),
            "validation_photos": len(val),
            "fp32_sha256": meta.onnx_sha256,
        }
        new = meta.model_copy(
            update={
                "name": out.name,
                "version": f"{meta.version}-int8",
                "precision": "int8",
                "metrics": {**meta.metrics, "int8": report},
            }
        )
        finish_package(tmp, new)
        new = load_package(tmp).meta  # the finished package must pass every check
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return new
