"""Hard negatives: the cells where the branch, scored as the service scores it, is most wrong."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from qc_model.surface import SurfaceConfig, branch_scores
from training.surface.data import Sample, cell_targets
from training.surface.scoring import torch_runner


def mine_hard_negatives(
    model: Any,
    samples: Sequence[Sample],
    cfg: SurfaceConfig,
    k: int,
    photos: int,
    rng: np.random.Generator,
    per_class: int = 2,
    min_prob: float = 0.5,
) -> tuple[NDArray[np.int64], dict[str, float]]:
    """Where the branch, scored as the service scores it (tiles, cells near the piece), is
    most wrong: on `photos` random samples, each class's `per_class` highest cells at or
    above `min_prob` with no mask of that class in or next to them. (N, 3) rows of
    (sample index, centre y, centre x) in crop pixels, and what was found."""
    was_training = model.training
    run = torch_runner(model)
    s, ring = cfg.stride, np.ones((3, 3), np.uint8)
    picked = rng.choice(len(samples), size=min(photos, len(samples)), replace=False)
    rows: list[tuple[int, int, int]] = []
    for i in tqdm(picked, desc="mine hard negatives", unit="photo", leave=False):
        sample = samples[int(i)]
        _, probs = branch_scores(run, sample.image, sample.piece, cfg)
        near = cell_targets(sample.bits, k, s)
        for c in range(min(k, probs.shape[0])):
            free = cv2.dilate(near[c].astype(np.uint8), ring) == 0
            score = np.where(free[: probs.shape[1], : probs.shape[2]], probs[c], 0.0).ravel()
            top = np.argsort(score)[::-1][:per_class]
            for j in top[score[top] >= min_prob]:
                y, x = divmod(int(j), probs.shape[2])
                rows.append((int(i), y * s + s // 2, x * s + s // 2))
    if was_training:
        model.train()
    found = {"photos": float(len(picked)), "cells": float(len(rows))}
    return np.asarray(rows, np.int64).reshape(-1, 3), found
