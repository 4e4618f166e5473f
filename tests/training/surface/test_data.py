"""training.surface.data: per-cell targets and a photo's sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from qc_model.inference import read_image
from qc_model.manifest import Manifest
from qc_model.preprocess import PreprocessConfig, crop_to_piece
from qc_model.surface import SurfaceConfig
from qc_model.taxonomy import VISUAL_DEFECTS
from training.surface.data import cell_targets, make_sample


def test_cell_targets_mark_every_cell_a_mask_pixel_falls_in() -> None:
    bits = np.zeros((24, 16), np.uint8)
    bits[3, 9] = 0b01  # class 0 in cell (0, 1)
    bits[17, 0] = 0b10  # class 1 in cell (2, 0)
    bits[8, 8] = 0b11  # both in cell (1, 1)
    t = cell_targets(bits, 2, 8)
    assert t.shape == (2, 3, 2)
    assert t[0].tolist() == [[0, 1], [0, 1], [0, 0]]
    assert t[1].tolist() == [[0, 0], [0, 1], [1, 0]]


def test_a_sample_is_the_serving_crop_with_its_masks(synth: Path) -> None:
    m = Manifest.read(synth / "manifest.jsonl")
    rec = next(r for r in m.records if r.masks)
    cfg = SurfaceConfig()
    s = make_sample(rec, synth, list(VISUAL_DEFECTS), cfg)
    box = crop_to_piece(read_image(synth / rec.image), PreprocessConfig()).box
    side = box[2] - box[0]
    assert s.image.shape[:2] == (-(-side // 8) * 8,) * 2  # the crop as photographed, padded
    assert s.labels.tolist() == [c in rec.labels for c in VISUAL_DEFECTS]
    for k, c in enumerate(VISUAL_DEFECTS):
        assert bool(np.any(s.bits & (1 << k))) == (c in rec.masks and c in rec.labels)
    # A coarser scale: the crop and its masks shrink together.
    half = make_sample(rec, synth, list(VISUAL_DEFECTS), SurfaceConfig(px_per_mm=0.5))
    assert half.image.shape[0] < s.image.shape[0] * 0.6  # 512 px photos: ~1.3 px per mm
    assert (half.bits > 0).any() == (s.bits > 0).any()
