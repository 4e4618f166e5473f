"""A bounded memory bank: greedy k-center coreset (PatchCore) on a random projection.

Each step adds the patch farthest from everything chosen so far, so rare but normal patches
(an edge, a clasp) keep a neighbour in the bank while the thousands of near-identical patches
of plain metal collapse to a few. Distances are taken in a random projection to `proj_dim`
dimensions (Johnson-Lindenstrauss keeps them roughly), which makes each step one
matrix-vector product over the pool.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm


def kcenter_coreset(
    x: NDArray[np.float32],
    k: int,
    proj_dim: int = 64,
    seed: int = 0,
    progress: bool = False,
) -> NDArray[np.int64]:
    """Indices of `k` rows of `x` (N, D) chosen greedily farthest-first; all rows when N <= k."""
    n = len(x)
    if k < 1:
        raise ValueError(f"coreset size must be >= 1, got {k}")
    if n <= k:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    d = x.shape[1]
    if proj_dim < d:
        proj = rng.normal(size=(d, proj_dim)).astype(np.float32) / np.float32(np.sqrt(proj_dim))
        z = np.ascontiguousarray(x @ proj, np.float32)
    else:
        z = np.ascontiguousarray(x, np.float32)
    sq = (z * z).sum(1)
    chosen = np.empty(k, np.int64)
    chosen[0] = rng.integers(n)
    nearest = sq - 2.0 * (z @ z[chosen[0]]) + sq[chosen[0]]
    steps = tqdm(range(1, k), desc="coreset", unit="patch", disable=not progress, leave=False)
    for i in steps:
        j = int(np.argmax(nearest))
        chosen[i] = j
        np.minimum(nearest, sq - 2.0 * (z @ z[j]) + sq[j], out=nearest)
    return chosen


def random_rows(n: int, k: int, rng: np.random.Generator) -> NDArray[np.int64]:
    """At most `k` of range(n) at random, in order."""
    if n <= k:
        return np.arange(n, dtype=np.int64)
    return np.sort(rng.choice(n, size=k, replace=False)).astype(np.int64)


SAMPLINGS = ("coreset", "random")


def bank_rows(pool: NDArray[np.float32], size: int, sampling: str, seed: int) -> NDArray[np.int64]:
    """The pool rows that form a bank of at most `size`: the greedy k-center coreset (covers
    the pool's extremes) or rows drawn at random (keeps its density: a rare cell of a good
    photo stays rare, so a defect resembling it still scores far)."""
    if sampling == "random":
        return np.sort(random_rows(len(pool), size, np.random.default_rng(seed)))
    if sampling != "coreset":
        raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
    return np.asarray(kcenter_coreset(pool, size, seed=seed, progress=True), np.int64)
