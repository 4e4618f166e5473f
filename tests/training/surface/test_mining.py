"""training.surface.mining: hard negatives where the service counts cells."""

from __future__ import annotations

import numpy as np

from qc_model.surface import SurfaceConfig
from training.surface.data import Sample
from training.surface.mining import mine_hard_negatives

from .crops import lit


def test_mining_finds_the_confident_wrong_cells_near_the_piece_only() -> None:
    import torch

    # A "branch" that calls every bright 8 x 8 cell class 0 and class 1 (stride 8, k=2).
    net = torch.nn.Conv2d(3, 2, 8, stride=8)
    with torch.no_grad():
        net.weight.fill_(20.0 / (3 * 64))
        net.bias.fill_(-10.0)
    cfg = SurfaceConfig(px_per_mm=5.0, tile=32, piece_margin=8)
    # Bright spots: A on the piece with a class-0 mask on it, B on the piece with nothing,
    # C on the paper far from the piece (the service never counts it).
    img = lit(96, 96, [(8, 8, 16, 16), (8, 40, 16, 48), (80, 80, 88, 88)])
    piece = np.zeros((96, 96), bool)
    piece[0:24, 0:56] = True
    bits = np.zeros((96, 96), np.uint8)
    bits[10, 10] = 0b01
    sample = Sample(img, bits, np.array([True, False]), "d", piece)
    rows, found = mine_hard_negatives(net, [sample], cfg, 2, 5, np.random.default_rng(0))
    centres = {(y, x) for _, y, x in rows.tolist()}
    assert (12, 44) in centres  # B, for both classes
    assert (84, 84) not in centres  # C: not a cell the service counts
    # A carries a class-0 mask, so it is no negative for class 0; for class 1 it is.
    assert rows.tolist().count([0, 12, 12]) == 1 and rows.tolist().count([0, 12, 44]) == 2
    assert found == {"photos": 1.0, "cells": 3.0}
