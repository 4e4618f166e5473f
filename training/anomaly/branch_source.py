"""Anomaly features from the package's own surface branch (source "branch", docs/ANOMALY.md).

The branch already runs on every photo the service inspects, on tiles over the piece at its
trained scale in pixels per millimetre. The input of its last layer, one vector per 8 px cell,
is the feature here: surface.onnx gains it as a third output (`cell_features`, the same
tensor, so the logits stay byte-identical), and the anomaly banks hold the counted cells of
each design's good photos. Serving then reads the features off the branch run it makes for the
defect scores: the anomaly model costs the nearest-neighbour search alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from numpy.typing import NDArray

from qc_model.anomaly import AnomalyError
from qc_model.inference import Inferencer, read_image
from qc_model.manifest import Record, sha256_file
from qc_model.package import SURFACE_CELLS, SURFACE_FILE, read_meta
from qc_model.package_graphs import SURFACE_FEATURES


def feature_tensor(model: onnx.ModelProto) -> str:
    """The name of the tensor the branch's last layer (the Conv giving `cell_logits`) reads."""
    for node in model.graph.node:
        if SURFACE_CELLS in node.output:
            if node.op_type != "Conv":
                raise AnomalyError(
                    f"{SURFACE_FILE}: '{SURFACE_CELLS}' comes from a {node.op_type}, not the "
                    "1x1 convolution of a branch head; its features cannot be found"
                )
            return str(node.input[0])
    raise AnomalyError(f"{SURFACE_FILE}: no node gives '{SURFACE_CELLS}'")


def add_feature_output(path: Path) -> int:
    """Give the branch graph at `path` the `cell_features` output (in place, unless it has one);
    returns the feature dimension (the last layer's input channels)."""
    model = onnx.load(str(path))
    outs = [o.name for o in model.graph.output]
    source = feature_tensor(model)
    weights = {t.name: t for t in model.graph.initializer}
    conv = next(n for n in model.graph.node if SURFACE_CELLS in n.output)
    if conv.input[1] not in weights:
        raise AnomalyError(f"{path}: the last layer's weight is not a constant")
    dim = int(weights[conv.input[1]].dims[1])
    if SURFACE_FEATURES not in outs:
        model.graph.node.append(
            onnx.helper.make_node("Identity", [source], [SURFACE_FEATURES], name="cell_features")
        )
        model.graph.output.append(
            onnx.helper.make_tensor_value_info(
                SURFACE_FEATURES, onnx.TensorProto.FLOAT, ["batch", dim, "gh", "gw"]
            )
        )
        onnx.checker.check_model(model)
        onnx.save(model, str(path))
    return dim


def prepare_branch(folder: Path) -> tuple[int, int, str]:
    """Make the package in `folder` (a staged copy) give its branch's features: (feature
    dimension, the branch's stride, surface.onnx's new checksum). package.json follows."""
    from training.export import finish_package

    meta = read_meta(folder)
    if meta.surface is None:
        raise AnomalyError(
            f"{folder}: no surface branch; an anomaly model of source 'branch' reads its cells "
            "(attach one with `kito surface attach`, or use --source extractor)"
        )
    if meta.surface.config.tile is None:
        raise AnomalyError(
            f"{folder}: its surface branch scores the whole crop in one run, not tiles over the "
            "piece; attach a tiled branch first"
        )
    dim = add_feature_output(folder / SURFACE_FILE)
    sha = sha256_file(folder / SURFACE_FILE)
    surface = meta.surface.model_copy(update={"onnx_sha256": sha})
    finish_package(folder, meta.model_copy(update={"surface": surface}))
    return dim, meta.surface.config.stride, sha


@dataclass
class BranchExtractor:
    """The staged package's branch, run on photos as the service runs it (Inferencer)."""

    package: Path
    root: Path
    dim: int
    inferencer: Any = field(init=False)

    def __post_init__(self) -> None:
        self.inferencer = Inferencer(self.package, threads=2)

    def cells(self, r: Record, px_per_mm: float | None) -> NDArray[np.float32]:
        """(n, D) the features of the cells that count in one photo (none without a crop)."""
        inf = self.inferencer
        prep = inf.prepare(read_image(self.root / r.image), design=r.design_id)
        if prep.surface is None:
            return np.zeros((0, self.dim), np.float32)
        _, feats, _ = inf.run_surface_cells(prep.surface, prep.surface_piece)
        return np.asarray(feats, np.float32)

    def scale(self, records: list[Record]) -> float | None:
        """The branch has its own scale (its config's px/mm): banks keep none."""
        return None
