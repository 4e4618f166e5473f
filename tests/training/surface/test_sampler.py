"""training.surface.sampler: where the training patches are aimed."""

from __future__ import annotations

import numpy as np
import pytest

from qc_model.errors import DataError
from training.surface.data import Sample
from training.surface.sampler import PatchSampler

from .crops import lit


def _sample(h: int, w: int, defect_at: tuple[int, int] | None) -> Sample:
    bits = np.zeros((h, w), np.uint8)
    if defect_at:
        bits[defect_at] = 0b100
    labels = np.array([False, False, defect_at is not None])
    return Sample(np.full((h, w, 3), 128, np.uint8), bits, labels, "d")


def test_sampler_aims_half_the_patches_at_defects_and_keeps_targets_aligned() -> None:
    samples = [_sample(304, 200, (150, 100)), _sample(88, 56, None)]  # one smaller than a patch
    sampler = PatchSampler(samples, k=3, patch=64, seed=1)
    x, y = sampler.batch(200)
    assert x.shape == (200, 3, 64, 64) and y.shape == (200, 3, 8, 8)
    assert x.min() >= -1.0 and x.max() <= 1.0
    with_defect = y[:, 2].reshape(200, -1).max(axis=1)
    # About half the patches are aimed at the single defect pixel (the jitter keeps it inside).
    assert 0.35 < with_defect.mean() < 0.75
    assert y[:, :2].sum() == 0  # classes 0 and 1 are nowhere
    assert np.all(y[:, 2].reshape(200, -1).sum(axis=1) <= 1)  # one pixel, one cell
    with pytest.raises(DataError, match="multiple of 8"):
        PatchSampler(samples, k=3, patch=60, seed=1)


def test_negatives_can_be_aimed_at_the_piece_and_at_mined_cells() -> None:
    # A 400 x 400 crop, mostly paper; the piece is a 16 px square near one corner.
    piece = np.zeros((400, 400), bool)
    piece[340:356, 40:56] = True
    good = Sample(lit(400, 400, [(340, 40, 356, 56)]), np.zeros((400, 400), np.uint8),
                  np.zeros(3, bool), "d", piece)  # fmt: skip
    anywhere = PatchSampler([good], k=3, patch=64, seed=2)
    hits = np.mean([anywhere.one()[0].any() for _ in range(200)])
    assert hits < 0.3  # random patches seldom reach a small piece
    on_piece = PatchSampler([good], k=3, patch=64, seed=2, piece_fraction=1.0)
    assert all(on_piece.one()[0].any() for _ in range(200))  # every one holds some of it
    # A mined centre far from the piece: with hard_fraction 1 every negative is aimed there.
    hard = PatchSampler([good], k=3, patch=64, seed=2, piece_fraction=1.0, hard_fraction=1.0)
    hard.set_hard(np.array([[0, 100, 300]]))
    assert not any(hard.one()[0].any() for _ in range(100))  # the piece is out of reach
    hard.set_hard(np.zeros((0, 3), np.int64))  # no pool yet: back to the piece
    assert all(hard.one()[0].any() for _ in range(50))
    with pytest.raises(DataError, match="hard_fraction"):
        PatchSampler([good], k=3, patch=64, seed=2, hard_fraction=1.5)
