"""Random training patches for the branch: aimed at defects, at the piece, at mined cells."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from qc_model.errors import DataError
from qc_model.surface import surface_input, window
from training.surface.data import Sample, cell_targets


class PatchSampler:
    """Random training patches: half centred near a defect pixel, the other half negatives.

    A negative is centred on a mined hard negative (`set_hard`) with probability
    `hard_fraction`, else on a pixel of the piece (the locator's mask, where the service counts
    cells) with probability `piece_fraction`, else anywhere in the crop."""

    def __init__(
        self,
        samples: Sequence[Sample],
        k: int,
        patch: int,
        seed: int,
        stride: int = 8,
        *,
        piece_fraction: float = 0.0,
        hard_fraction: float = 0.0,
    ) -> None:
        if patch % stride:
            raise DataError(f"patch must be a multiple of {stride}, got {patch}")
        for name, f in (("piece_fraction", piece_fraction), ("hard_fraction", hard_fraction)):
            if not 0.0 <= f <= 1.0:
                raise DataError(f"{name} must be within [0, 1], got {f}")
        self.samples, self.k, self.patch, self.stride = samples, k, patch, stride
        self.piece_fraction, self.hard_fraction = piece_fraction, hard_fraction
        self.rng = np.random.default_rng(seed)
        self.defective = [i for i, s in enumerate(samples) if s.bits.any()]
        self.with_piece = [
            i for i, s in enumerate(samples) if s.piece is not None and s.piece.any()
        ]
        self.hard: NDArray[np.int64] = np.zeros((0, 3), np.int64)  # (sample, y, x) centres

    def set_hard(self, centres: NDArray[np.int64]) -> None:
        """The hard negatives to aim at from now on: (N, 3) rows of (sample, y, x) pixels."""
        self.hard = np.asarray(centres, np.int64).reshape(-1, 3)

    def _negative(self) -> tuple[Sample, int, int]:
        """A negative patch's sample and top-left pixel."""
        rng, p = self.rng, self.patch
        centre: tuple[Sample, int, int] | None = None
        if self.hard_fraction > 0 and len(self.hard) and rng.random() < self.hard_fraction:
            i, cy, cx = (int(v) for v in self.hard[int(rng.integers(len(self.hard)))])
            centre = self.samples[i], cy, cx
        elif self.piece_fraction > 0 and self.with_piece and rng.random() < self.piece_fraction:
            s = self.samples[self.with_piece[int(rng.integers(len(self.with_piece)))]]
            assert s.piece is not None
            ys, xs = np.nonzero(s.piece)
            j = int(rng.integers(len(ys)))
            centre = s, int(ys[j]), int(xs[j])
        if centre is not None:  # anywhere within the middle half of the patch
            s, cy, cx = centre
            jitter = rng.integers(-p // 4, p // 4 + 1, size=2)
            return s, cy + int(jitter[0]) - p // 2, cx + int(jitter[1]) - p // 2
        s = self.samples[int(rng.integers(len(self.samples)))]
        h, w = s.bits.shape
        y = int(rng.integers(min(0, h - p), max(1, h - p + 1)))
        x = int(rng.integers(min(0, w - p), max(1, w - p + 1)))
        return s, y, x

    def one(self) -> tuple[NDArray[np.uint8], NDArray[np.float32]]:
        rng, p = self.rng, self.patch
        if self.defective and rng.random() < 0.5:
            s = self.samples[self.defective[int(rng.integers(len(self.defective)))]]
            present = [c for c in range(self.k) if np.any(s.bits & (1 << c))]
            c = present[int(rng.integers(len(present)))]
            ys, xs = np.nonzero(s.bits & (1 << c))
            j = int(rng.integers(len(ys)))
            jitter = rng.integers(-p // 3, p // 3 + 1, size=2)
            y, x = int(ys[j] + jitter[0]) - p // 2, int(xs[j] + jitter[1]) - p // 2
        else:
            s, y, x = self._negative()
        img, bits = window(s.image, y, x, p), window(s.bits, y, x, p)
        # Orientation carries no meaning on the mat: flips and quarter turns.
        turns = int(rng.integers(4))
        img, bits = np.rot90(img, turns), np.rot90(bits, turns)
        if rng.random() < 0.5:
            img, bits = img[:, ::-1], bits[:, ::-1]
        # Exposure and white balance drift a little between phones.
        gain = rng.uniform(0.85, 1.15) * rng.uniform(0.95, 1.05, size=3)
        img = np.clip(img.astype(np.float32) * gain, 0, 255).astype(np.uint8)
        return img, cell_targets(np.ascontiguousarray(bits), self.k, self.stride)

    def batch(self, n: int) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        pairs = [self.one() for _ in range(n)]
        x = np.stack([surface_input(np.ascontiguousarray(a)) for a, _ in pairs])
        return x, np.stack([t for _, t in pairs])
