"""Golden reference images: each design rendered as a perfect piece, top-down, on the mat."""

from __future__ import annotations

import zlib
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from qc_model.catalog import Design
from qc_model.mat import DEFAULT_MAT
from training.synth.camera import plane_to_image
from training.synth.capture import Conditions
from training.synth.designs import load_designs
from training.synth.placement import Placement, item_outline
from training.synth.render import build_shape
from training.synth.sampling import Item, PieceSpec
from training.synth.scene import compose

GOLDEN_LONG_SIDE = 600


def nominal_item(design: Design) -> Item:
    """The design exactly as specified: nominal size and colour, no defects."""
    seed = zlib.crc32(design.id.encode())
    dims = {d.measure: d.nominal_mm for d in design.dimensions}
    comps = tuple(design.components.colours) if design.components else ()
    pieces = tuple(
        PieceSpec(design, seed + i, dims, design.finish.lab, comps, frozenset(), 1.0, i)
        for i in range(2 if design.pair else 1)
    )
    return Item(design, pieces, frozenset())


def _placements(item: Item) -> list[Placement]:
    cx = DEFAULT_MAT.width_mm / 2
    cy = DEFAULT_MAT.height_mm / 2
    if len(item.pieces) == 1:
        return [Placement(0.0, (cx, cy))]
    a, b = (build_shape(p).outline for p in item.pieces)
    gap = 8.0
    left = -(a[:, 0].max() + gap / 2)
    right = -b[:, 0].min() + gap / 2
    return [Placement(0.0, (cx + left, cy)), Placement(0.0, (cx + right, cy))]


def render_golden(design: Design, long_side: int = GOLDEN_LONG_SIDE) -> NDArray[np.uint8]:
    """The reference photo (BGR): ideal light, no tilt, no noise, cropped around the piece."""
    item = nominal_item(design)
    placements = _placements(item)
    outline = item_outline([build_shape(p) for p in item.pieces], placements)
    lo, hi = outline.min(0), outline.max(0)
    extent = hi - lo + 2 * max(4.0, 0.12 * float((hi - lo).max()))
    scale = long_side / float(extent.max())
    w = round(extent[0] * scale) if extent[0] >= extent[1] else round(long_side * 0.75)
    h = round(extent[1] * scale) if extent[1] > extent[0] else round(long_side * 0.75)
    w, h = max(w, long_side // 2), max(h, long_side // 2)
    centre = (float((lo[0] + hi[0]) / 2), float((lo[1] + hi[1]) / 2))
    hom = plane_to_image((w, h), centre, scale)
    cond = Conditions(applied=set(), background="paper", light=(-0.45, -0.6, 1.0))
    rng = np.random.default_rng(zlib.crc32(design.id.encode()))
    return compose(item, placements, hom, (w, h), cond, rng).image


def write_golden_images(catalog_dir: Path) -> list[Path]:
    """Render every design's reference image at the path its YAML names; returns the paths."""
    catalog_dir = Path(catalog_dir)
    written = []
    for design in load_designs(catalog_dir):
        img = render_golden(design)
        for ref in design.reference_images:
            path = catalog_dir / ref
            path.parent.mkdir(parents=True, exist_ok=True)
            if not cv2.imwrite(str(path), img, [cv2.IMWRITE_PNG_COMPRESSION, 9]):
                raise OSError(f"cannot write {path}")
            written.append(path)
    return written
