"""The branch as an ONNX graph for a model package (surface.onnx)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from qc_model.package import SURFACE_CELLS, SURFACE_INPUT, SURFACE_LOGITS


def surface_graph(model: Any) -> Any:
    """The deployed branch: (B, 3, H, W) -> max-cell logits (B, K), cell logits (B, K, h, w)."""
    import torch
    from torch import nn

    class SurfaceGraph(nn.Module):
        def __init__(self, net: nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            cells = self.net(x)  # (B, K, h, w)
            return cells.flatten(2).amax(dim=2), cells

    return SurfaceGraph(model).eval()


def export_surface_onnx(model: Any, path: Path, tile: int | None = None) -> None:
    """The branch as ONNX: any crop size, or (`tile`) only tiles of that size.

    A graph for tiles has its TF-style "same" padding fixed for that size and folded into the
    convolutions (training.fold_pads), and its height and width fixed, so that onnxruntime
    refuses any other size instead of padding it wrongly. The padding of a graph for any size
    follows the input's shape and is computed on every run (a Pad kernel and its shape
    arithmetic before each strided convolution). On 40 tiles of 96 px the fixed graph took
    40 ms against 63 ms on an AVX2 CPU (docs/BENCHMARKS.md, "Folded padding").
    """
    import copy

    import torch

    from training.export import freeze_same_padding
    from training.fold_pads import fold_pads

    if tile:
        model = copy.deepcopy(model).eval()
        freeze_same_padding(model, tile)
    graph = surface_graph(model)
    side = tile or 96
    spatial = {} if tile else {2: "height", 3: "width"}
    cells = {} if tile else {2: "cells_h", 3: "cells_w"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            graph,
            (torch.zeros(1, 3, side, side),),
            str(path),
            input_names=[SURFACE_INPUT],
            output_names=[SURFACE_LOGITS, SURFACE_CELLS],
            dynamic_axes={
                SURFACE_INPUT: {0: "batch", **spatial},
                SURFACE_LOGITS: {0: "batch"},
                SURFACE_CELLS: {0: "batch", **cells},
            },
            opset_version=17,
            do_constant_folding=True,
            dynamo=False,
        )
    # The exporter leaves the class dimension symbolic (it comes out of a reduction); the
    # loader checks it, so it is declared.
    import onnx

    graph_proto = onnx.load(str(path))
    with torch.no_grad():
        k = int(graph(torch.zeros(1, 3, side, side))[0].shape[1])
    for out in graph_proto.graph.output:
        out.type.tensor_type.shape.dim[1].dim_value = k
    onnx.save(graph_proto, str(path))
    if tile:
        fold_pads(path)


def graph_tile(path: Path) -> int | None:
    """The tile size a branch graph is fixed to, or None for a graph that takes any size."""
    import onnx

    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim[2:]
    sides = {d.dim_value for d in dims if d.HasField("dim_value")}
    return sides.pop() if len(sides) == 1 and len(dims) == 2 else None
