"""A graph in static INT8: onnxruntime's quantizer over a package's network or surface branch,
with the ranges from calibration inputs and the head left in float. Split from
training.quantize, which quantizes whole packages and checks them."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from qc_model.errors import DataError
from qc_model.package import HEATMAPS_NAME, PROBS_NAME

# The trunk's ops. With Clip/Relu and the residual Adds quantized too, each activation's range is
# the one after its clip and the integer tensors flow from one convolution to the next instead of
# being dequantized and quantized again around every float op.
TRUNK_OPS = ["Conv", "Clip", "Relu", "Add", "Pad", "MatMul", "Gemm"]


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over preprocessed inputs, `batch` a call."""

    def __init__(self, inputs: NDArray[np.float32], name: str = "input", batch: int = 1) -> None:
        self._iter: Iterator[dict[str, NDArray[np.float32]]] = iter(
            {name: inputs[i : i + batch]} for i in range(0, len(inputs), batch)
        )

    def get_next(self) -> dict[str, NDArray[np.float32]] | None:
        return next(self._iter, None)


def head_nodes(
    model_path: Path, outputs: tuple[str, str] = (PROBS_NAME, HEATMAPS_NAME)
) -> list[str]:
    """The nodes from the class map on: what turns the trunk's features into the outputs.

    The class map is the last tensor that both `outputs` (the network's `probs` and `heatmaps`,
    or a surface branch's `logits` and `cell_logits`) are computed from; the node that makes it
    (the classifier) and every node after it stay in float. Quantizing them would round the
    logits to the classifier's INT8 step and the probabilities to 1/255, and move photos across
    their thresholds for no speed gain: they are a 7-channel map.
    """
    import onnx

    nodes = list(onnx.load(str(model_path)).graph.node)
    producer = {t: i for i, n in enumerate(nodes) for t in n.output}

    def ancestors(tensor: str) -> set[int]:
        seen: set[int] = set()
        stack = [producer[tensor]] if tensor in producer else []
        while stack:
            i = stack.pop()
            if i not in seen:
                seen.add(i)
                stack.extend(producer[t] for t in nodes[i].input if t in producer)
        return seen

    common = ancestors(outputs[0]) & ancestors(outputs[1])
    if not common:
        return []
    cam = max(common)  # nodes are in topological order: the latest shared node
    consumers: dict[str, list[int]] = {}
    for i, n in enumerate(nodes):
        for t in n.input:
            consumers.setdefault(t, []).append(i)
    head, stack = set(), [cam]
    while stack:
        i = stack.pop()
        if i not in head:
            head.add(i)
            stack.extend(j for t in nodes[i].output for j in consumers.get(t, []))
    return [nodes[i].name for i in sorted(head)]


INT8_FORMATS = ("qoperator", "qdq")


def quantize_onnx(
    fp32: Path,
    int8: Path,
    calibration: NDArray[np.float32],
    fmt: str = "qoperator",
    *,
    reduce_range: bool = True,
    op_types: Sequence[str] = TRUNK_OPS,
    keep_float: Sequence[str] = (),
    input_name: str = "input",
    head_outputs: tuple[str, str] = (PROBS_NAME, HEATMAPS_NAME),
    batch: int = 1,
) -> None:
    """Static INT8 of the trunk: per-channel weights, MinMax ranges from `calibration`.

    Every convolution, clip and residual add is quantized, the stem and the depthwise layers
    included, but the nodes named in `keep_float`; the head (`head_nodes`) stays in float.
    By default weights use 7 of their 8 bits (reduce_range): CPUs without VNNI (qc_model.cpu)
    multiply u8 activations by s8 weights with `vpmaddubsw`, whose int16 pair sums saturate when
    full-range weights meet large activations. On such a CPU (AVX2 only) the bundled model's
    8-bit trunk lost 3.55 points of validation macro-F1 and the 7-bit one none. Where VNNI is
    present nothing saturates and 8 bits are closer to FP32: the branch's 8-bit copy moved 37
    of 400 val photos across a band edge, the 7-bit one 83 (docs/BENCHMARKS.md, "INT8 on a CPU
    with VNNI"); `kito quantize --weight-bits 8` passes reduce_range=False.

    fmt "qoperator" (default) writes integer QLinearConv/QLinearAdd nodes; "qdq" writes
    Quantize/DequantizeLinear pairs around float ops for the runtime to fuse. Without VNNI
    neither was faster than the FP32 graph with its padding folded (0.86-0.90x).
    op_types exists for bench/bench_int8.py, which measures the alternatives. input_name,
    head_outputs and batch (calibration inputs per run) fit another graph, a surface branch
    (training.quantize_branch, which also keeps its stem in float).
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
            _Reader(calibration, input_name, batch),  # type: ignore[arg-type]
            quant_format=QuantFormat.QDQ if fmt == "qdq" else QuantFormat.QOperator,
            per_channel=True,
            reduce_range=reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=list(op_types),
            nodes_to_exclude=head_nodes(prepared, head_outputs) + list(keep_float),
        )
