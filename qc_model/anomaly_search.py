"""The anomaly model's arithmetic: nearest-neighbour distances to a bank, the image score,
and the calibrated level of a score. Numpy only.

The search is one BLAS matrix product per chunk (|b|^2 - 2 q.b, with |q|^2 added after the
minimum), in float32: the cost is queries x bank rows x dimensions, so a bank stored in a
lower-dimensional projection (qc_model.anomaly) costs proportionally less."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
from numpy.typing import NDArray

from qc_model.anomaly_meta import BankMeta


def level_of(score: float, bank: BankMeta) -> float:
    """The calibrated level of a raw score: the log-normal tail fitted on held-out goods."""
    z = (np.log(max(score, 1e-12)) - bank.log_mu) / bank.log_sigma
    return float(NormalDist().cdf(float(z)))


def score_at_level(level: float, bank: BankMeta) -> float:
    """The raw score whose level is `level` (the inverse of `level_of`)."""
    z = NormalDist().inv_cdf(min(max(level, 1e-9), 1 - 1e-9))
    return float(np.exp(bank.log_mu + z * bank.log_sigma))


def nearest_distances(
    queries: NDArray[np.float32],
    bank: NDArray[np.float32],
    bank_sq: NDArray[np.float32] | None = None,
    max_elements: int = 1 << 22,
) -> NDArray[np.float32]:
    """(N, D) x (M, D) -> (N,) Euclidean distance of each query to its nearest bank row,
    in chunks of queries so at most `max_elements` distances are held at once (16 MB)."""
    if queries.ndim != 2 or bank.ndim != 2 or queries.shape[1] != bank.shape[1]:
        raise ValueError(f"queries {queries.shape} and bank {bank.shape} do not match")
    if len(bank) == 0:
        raise ValueError("the bank is empty")
    sq = (bank * bank).sum(1) if bank_sq is None else bank_sq
    rows = max(1, max_elements // len(bank))
    out = np.empty(len(queries), np.float32)
    for s in range(0, len(queries), rows):
        q = queries[s : s + rows]
        d2 = sq[None, :] - 2.0 * (q @ bank.T)  # (r, M): |b|^2 - 2 q.b; |q|^2 added after min
        out[s : s + rows] = d2.min(axis=1) + (q * q).sum(1)
    return np.sqrt(np.maximum(out, 0.0)).astype(np.float32)


def image_score(distances: NDArray[np.float32], top_k: int) -> float:
    """Mean of the `top_k` largest patch distances (all of them when fewer)."""
    if distances.size == 0:
        raise ValueError("no patches to score")
    k = min(top_k, distances.size)
    return float(np.partition(distances.ravel(), -k)[-k:].mean())


def pca_projection(x: NDArray[np.float32], dim: int) -> NDArray[np.float32]:
    """(D, dim): the `dim` principal directions of the rows of x (all D when dim >= D).
    Distances are translation-invariant, so no mean is kept: |(a - b) P| = |aP - bP|."""
    if dim >= x.shape[1]:
        return np.eye(x.shape[1], dtype=np.float32)
    xc = np.asarray(x, np.float64) - np.asarray(x, np.float64).mean(0)
    cov = xc.T @ xc / max(1, len(x) - 1)
    _, vecs = np.linalg.eigh(cov)  # ascending eigenvalues
    return np.ascontiguousarray(vecs[:, ::-1][:, :dim], np.float32)
