"""The defect network's `embedding` output (qc_model.identity): the stage-5 feature map of the
piece crop, averaged over its cells, added to model.onnx as a third output.

The classifier's outputs are untouched: one GlobalAveragePool and a Flatten on a tensor the
graph already computes, so a package gains the embedding without training again and onnxruntime
computes it for about nothing. Lite0's stage-5 output (192 channels, 1/32 of the input) told the
16 catalog designs apart better than the head's 1280 (docs/CHECKS.md, "Declared design").
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from qc_model.errors import DataError
from qc_model.identity import EMBEDDING_NAME

# timm's EfficientNet blocks, as torch.onnx names their nodes: "/net/blocks.5/blocks.5.3/Add".
_STAGE = re.compile(r"/blocks\.(\d+)/")
TAP_STAGE = 5


def stage_output(graph: Any, stage: int = TAP_STAGE) -> str:
    """The name of the tensor `stage` ends with: the output of the last node in that stage.
    A network without such stages: the feature map its classifier pools (the input of its
    last global mean)."""
    last = None
    for node in graph.node:
        m = _STAGE.search(node.name)
        if m and int(m.group(1)) == stage:
            last = node
    if last is not None:
        return str(last.output[0])
    pools = [n for n in graph.node if n.op_type in ("ReduceMean", "GlobalAveragePool")]
    if not pools:
        raise DataError(
            f"the network has no stage {stage} (no node named '.../blocks.{stage}/...') and no "
            "global mean to take its features from; it cannot give an embedding"
        )
    return str(pools[-1].input[0])


def add_embedding_output(path: Path, tap: str | None = None) -> int:
    """Add the `embedding` (batch, D) output to the ONNX file at `path` (in place) and return
    D; a graph that has one already is left as it is. `tap`: the (B, C, h, w) tensor to pool
    (default: the end of stage TAP_STAGE)."""
    import onnx
    from onnx import TensorProto, helper, shape_inference

    model = onnx.load(str(path))
    if EMBEDDING_NAME in {o.name for o in model.graph.output}:
        return _dims(model)
    tap = tap or stage_output(model.graph)
    if tap not in {o for n in model.graph.node for o in n.output}:
        raise DataError(f"no tensor named '{tap}' in the network")
    pooled = f"{EMBEDDING_NAME}_pooled"
    model.graph.node.extend(
        [
            helper.make_node("GlobalAveragePool", [tap], [pooled], name="/embedding/Pool"),
            helper.make_node(
                "Flatten", [pooled], [EMBEDDING_NAME], name="/embedding/Flatten", axis=1
            ),
        ]
    )
    inferred = shape_inference.infer_shapes(model)
    channels = _channels(inferred, tap)
    out = helper.make_tensor_value_info(EMBEDDING_NAME, TensorProto.FLOAT, ["batch", channels])
    model.graph.output.append(out)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return channels


def _channels(model: Any, tensor: str) -> int:
    for info in list(model.graph.value_info) + list(model.graph.output):
        if info.name == tensor:
            dims = info.type.tensor_type.shape.dim
            if len(dims) == 4 and dims[1].HasField("dim_value"):
                return int(dims[1].dim_value)
    raise DataError(f"cannot tell how many channels '{tensor}' has")


def _dims(model: Any) -> int:
    out = next(o for o in model.graph.output if o.name == EMBEDDING_NAME)
    dims = out.type.tensor_type.shape.dim
    return int(dims[1].dim_value)
