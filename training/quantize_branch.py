"""What INT8 of a package's surface branch needs: calibration tiles, and the scores its guard
compares, as serving makes them.

The branch's convolutions are most of a 12 MP photo's model time (docs/BENCHMARKS.md); they are
quantized like the trunk's (training.int8_graph.quantize_onnx), calibrated on the tiles the service
feeds it from training photos, with its stem convolution (`stem_conv`), its cell classifier
and what follows left in float. Its
fused thresholds apply to the fused probabilities, so the guard compares those: each photo run
through the whole package, FP32 and INT8, as `kito eval --package` runs it.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from qc_model.anomaly import ANOMALY_BANKS, ANOMALY_META, ANOMALY_ONNX
from qc_model.inference import Inferencer, read_image
from qc_model.manifest import Record
from qc_model.package import SURFACE_CELLS, SURFACE_INPUT, SURFACE_LOGITS
from qc_model.surface import piece_cells, tile_inputs, tile_origins

# How training.int8_graph.quantize_onnx reads the branch's graph: its input, the two outputs
# its float head ends in, and 16 tiles a calibration run.
BRANCH: dict[str, Any] = {
    "input_name": SURFACE_INPUT,
    "head_outputs": (SURFACE_LOGITS, SURFACE_CELLS),
    "batch": 16,
}
# Calibration tiles: enough to cover every design's surfaces, few enough to calibrate in
# seconds. Tiles are taken evenly from each photo's own.
MAX_CALIBRATION_TILES = 512
TILES_PER_PHOTO = 16


def stem_conv(model: Path) -> list[str]:
    """The branch's first convolution, on the tile's pixels, which its INT8 copy keeps in
    float: that took the 8-bit branch's fused scores from 37 to 28 of 400 val photos crossing a
    band edge, at the same speed (python -m research.int8_branch, research/README.md)."""
    import onnx

    return [n.name for n in onnx.load(str(model)).graph.node if n.op_type == "Conv"][:1]


def branch_tiles(
    package: Path, root: Path, records: Sequence[Record], most: int = MAX_CALIBRATION_TILES
) -> NDArray[np.float32]:
    """(N, 3, tile, tile) branch inputs of the records' photos: the tiles the service would
    score, up to TILES_PER_PHOTO spread over each photo, at most `most` in all."""
    inf = Inferencer(package, threads=1)
    sm = inf.meta.surface
    if sm is None or sm.config.tile is None:
        raise ValueError(f"{package}: no tiled surface branch to calibrate")
    cfg = sm.config
    out: list[NDArray[np.float32]] = []
    for r in tqdm(records, desc="int8 branch calibration", unit="photo", leave=False):
        prepared = inf.prepare(read_image(root / r.image), design=r.design_id)
        assert prepared.surface is not None
        cells = piece_cells(prepared.surface_piece, prepared.surface.shape[:2], cfg)
        origins = tile_origins(cells, cfg.tile // cfg.stride)
        pick = np.linspace(0, len(origins) - 1, min(TILES_PER_PHOTO, len(origins)))
        out.append(tile_inputs(prepared.surface, [origins[int(i)] for i in pick.round()], cfg))
        if sum(len(x) for x in out) >= most:
            break
    return np.concatenate(out)[:most]


def served_probs(package: Path, root: Path, records: Sequence[Record]) -> NDArray[np.float32]:
    """(N, K) package probabilities of the records' photos, the branch fused in for each photo's
    design, as `kito eval --package` scores a package."""
    inf = Inferencer(package, threads=1, batch_size=1)
    probs = []
    for r in tqdm(records, desc=f"scores of {package.name}", unit="photo", leave=False):
        pred = inf.predict(root / r.image, [r.design_id])[0]
        probs.append([pred.probs[c] for c in inf.classes])
    return np.asarray(probs, np.float32)


def copy_anomaly(package: Path, dest: Path) -> None:
    """The package's anomaly model files, unchanged (package.json keeps pointing at them)."""
    for name in (ANOMALY_META, ANOMALY_ONNX, ANOMALY_BANKS):
        if (package / name).is_file():
            shutil.copyfile(package / name, dest / name)
