"""A package's ONNX graphs, opened and checked against its metadata: the defect network
(`check_embedded`, `check_io`) and the surface branch (`load_surface`). Split from
qc_model.package, which re-exports what others use."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from qc_model.errors import DataError
from qc_model.identity import EMBEDDING_NAME
from qc_model.manifest import checksum_mismatch
from qc_model.surface import BranchRunner

# `meta` below is qc_model.package's PackageMeta (or SurfaceMeta for the branch), typed Any:
# that module imports this one, so naming its classes here would make an import circle.

MODEL_FILE = "model.onnx"
META_FILE = "package.json"
ONNX_META_KEY = "kito_package"  # metadata_props key holding package.json minus the checksum
INPUT_NAME, PROBS_NAME, HEATMAPS_NAME = "input", "probs", "heatmaps"
SURFACE_FILE = "surface.onnx"
# The branch's graph: crop -> each class's highest cell logit and every cell's logit.
SURFACE_INPUT, SURFACE_LOGITS, SURFACE_CELLS = "crop", "logits", "cell_logits"
# Optional: each cell's features before the last layer, for an anomaly model of source "branch".
SURFACE_FEATURES = "cell_features"


class PackageError(DataError):
    """A model package that cannot be used; the message names the file and the problem."""


def load_surface(folder: Path, meta: Any, threads: int) -> Any:
    path = folder / SURFACE_FILE
    if not path.is_file():
        raise PackageError(
            f"{folder}: package.json names a surface branch, {SURFACE_FILE} is missing"
        )
    if why := checksum_mismatch(path, meta.onnx_sha256, "package.json"):
        raise PackageError(why)
    session = open_session(path, threads)
    inputs = session.get_inputs()
    if len(inputs) != 1 or inputs[0].name != SURFACE_INPUT or len(inputs[0].shape) != 4:
        raise PackageError(f"{path}: expected one input '{SURFACE_INPUT}' (batch, 3, H, W)")
    fixed = [d for d in inputs[0].shape[2:] if isinstance(d, int)]
    if inputs[0].shape[1] != 3 or (fixed and fixed != [meta.config.tile] * 2):
        raise PackageError(
            f"{path}: input must be (batch, 3, H, W) with H and W dynamic, or both the branch's "
            f"tile size ({meta.config.tile}) for a graph made for its tiles; got "
            f"{inputs[0].shape}"
        )
    outs = {o.name: o.shape for o in session.get_outputs()}
    k = len(meta.classes)
    if set(outs) - {SURFACE_FEATURES} != {SURFACE_LOGITS, SURFACE_CELLS}:
        raise PackageError(
            f"{path}: outputs must be '{SURFACE_LOGITS}' and '{SURFACE_CELLS}' (and optionally "
            f"'{SURFACE_FEATURES}'), got "
            f"{', '.join(sorted(outs))} (a branch exported before cell logits, with 'cells', "
            "must be attached again: kito surface attach)"
        )
    if len(outs[SURFACE_LOGITS]) != 2 or outs[SURFACE_LOGITS][1] != k:
        raise PackageError(
            f"{path}: '{SURFACE_LOGITS}' has shape {outs[SURFACE_LOGITS]}, {k} classes"
        )
    if len(outs[SURFACE_CELLS]) != 4 or outs[SURFACE_CELLS][1] != k:
        raise PackageError(
            f"{path}: '{SURFACE_CELLS}' has shape {outs[SURFACE_CELLS]}, {k} classes"
        )
    feats = outs.get(SURFACE_FEATURES)
    if feats is not None and len(feats) != 4:
        raise PackageError(f"{path}: '{SURFACE_FEATURES}' has shape {feats}, not (B, D, h, w)")
    return session


def has_cell_features(session: Any) -> bool:
    return SURFACE_FEATURES in {o.name for o in session.get_outputs()}


def surface_runner(session: Any) -> BranchRunner:
    """The branch graph's onnxruntime session as qc_model.surface.branch_scores runs it."""

    def run(x: NDArray[np.float32]) -> NDArray[np.float32]:
        (cells,) = session.run([SURFACE_CELLS], {SURFACE_INPUT: np.ascontiguousarray(x)})
        return np.asarray(cells, np.float32)

    return run


def feature_runner(session: Any) -> tuple[BranchRunner, list[NDArray[np.float32]]]:
    """`surface_runner` that also keeps, run by run, each input's cell features (B, D, h, w)
    from the same run, in the list it returns beside it."""
    kept: list[NDArray[np.float32]] = []

    def run(x: NDArray[np.float32]) -> NDArray[np.float32]:
        cells, feats = session.run(
            [SURFACE_CELLS, SURFACE_FEATURES], {SURFACE_INPUT: np.ascontiguousarray(x)}
        )
        kept.append(np.asarray(feats, np.float32))
        return np.asarray(cells, np.float32)

    return run, kept


def open_session(model: Path, threads: int) -> Any:
    """An onnxruntime CPU session for one of a package's graphs (PackageError if it cannot load)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # ORT's own warnings go to stderr, not to artisans' logs
    # Idle pool threads spin by default, taking CPU from the request threads decoding and
    # measuring other photos on the same cores.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own Fail/InvalidGraph/... types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PackageError(f"{model}: onnxruntime cannot load it: {first}") from None


def check_embedded(model: Path, session: Any, meta: Any) -> None:
    props = session.get_modelmeta().custom_metadata_map
    if ONNX_META_KEY not in props:
        raise PackageError(f"{model}: no embedded '{ONNX_META_KEY}' metadata")
    try:
        embedded = json.loads(props[ONNX_META_KEY])
    except json.JSONDecodeError:
        raise PackageError(f"{model}: embedded metadata is not JSON") from None
    alongside = json.loads(meta.embedded_json())
    differ = sorted(
        k for k in set(embedded) | set(alongside) if embedded.get(k) != alongside.get(k)
    )
    if differ:
        raise PackageError(f"{model}: embedded metadata differs from {META_FILE} in {differ}")


def check_io(model: Path, session: Any, meta: Any) -> None:
    inputs = session.get_inputs()
    size, k = meta.preprocess.input_size, len(meta.classes)
    if len(inputs) != 1 or inputs[0].name != INPUT_NAME:
        raise PackageError(f"{model}: expected one input named '{INPUT_NAME}'")
    shape, dtype = inputs[0].shape, inputs[0].type
    if dtype != "tensor(float)" or len(shape) != 4 or isinstance(shape[0], int):
        raise PackageError(
            f"{model}: input must be float32 (batch, 3, H, W) with a dynamic batch, "
            f"got {dtype} {shape}"
        )
    if list(shape[1:]) != [3, size, size]:
        raise PackageError(
            f"{model}: input shape {shape[1:]} does not match preprocess.input_size {size} "
            f"(expected [3, {size}, {size}])"
        )
    outs = {o.name: o.shape for o in session.get_outputs()}
    if set(outs) - {EMBEDDING_NAME} != {PROBS_NAME, HEATMAPS_NAME}:
        raise PackageError(
            f"{model}: outputs must be '{PROBS_NAME}' and '{HEATMAPS_NAME}' (and optionally "
            f"'{EMBEDDING_NAME}')"
        )
    emb = outs.get(EMBEDDING_NAME)
    if emb is not None and (len(emb) != 2 or not isinstance(emb[1], int)):
        raise PackageError(f"{model}: '{EMBEDDING_NAME}' must be (batch, D), got {emb}")
    if len(outs[PROBS_NAME]) != 2 or outs[PROBS_NAME][1] != k:
        raise PackageError(f"{model}: '{PROBS_NAME}' has shape {outs[PROBS_NAME]}, {k} classes")
    hm = outs[HEATMAPS_NAME]
    if len(hm) != 4 or hm[1] != k or list(hm[2:]) != list(meta.heatmap_size):
        raise PackageError(
            f"{model}: '{HEATMAPS_NAME}' has shape {hm}, expected (batch, {k}, "
            f"{meta.heatmap_size[0]}, {meta.heatmap_size[1]})"
        )
