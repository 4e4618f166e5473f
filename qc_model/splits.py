"""Reproducible train/val/test splits grouped by piece and stratified by label.

All photos of one piece land in the same split (otherwise a model is graded on pieces it has
already seen). Groups are stratified by their rarest label so that rare defects reach every split.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Sequence

from qc_model.manifest import GOOD, Record


def _rank(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()


def assign_splits(
    records: Sequence[Record],
    fractions: dict[str, float] | None = None,
    seed: int = 0,
) -> list[Record]:
    """Copies of `records` with `split` set. Records that already carry a split keep it."""
    fractions = fractions or {"train": 0.7, "val": 0.15, "test": 0.15}
    total = sum(fractions.values())
    if total <= 0 or any(v < 0 for v in fractions.values()):
        raise ValueError(f"split fractions must be non-negative and sum above 0: {fractions}")
    names = list(fractions)

    groups: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(records):
        if r.split is None:
            groups[r.piece_id].append(i)

    label_freq = Counter(
        label for idx in groups.values() for i in idx for label in (records[i].labels or [GOOD])
    )

    def stratum(idx: list[int]) -> str:
        labels = {label for i in idx for label in (records[i].labels or [GOOD])}
        return min(labels, key=lambda s: (label_freq[s], s))

    strata: dict[str, list[str]] = defaultdict(list)
    for piece, idx in groups.items():
        strata[stratum(idx)].append(piece)

    piece_split: dict[str, str] = {}
    for key in sorted(strata):
        pieces = sorted(strata[key], key=lambda p: _rank(seed, p))
        # Largest-remainder allocation so small strata still spread across splits.
        n = len(pieces)
        exact = [fractions[s] / total * n for s in names]
        counts = [int(e) for e in exact]
        order = sorted(range(len(names)), key=lambda j: (-(exact[j] - counts[j]), j))
        for j in order[: n - sum(counts)]:
            counts[j] += 1
        start = 0
        for s, c in zip(names, counts, strict=True):
            for p in pieces[start : start + c]:
                piece_split[p] = s
            start += c

    return [
        r if r.split is not None else r.model_copy(update={"split": piece_split[r.piece_id]})
        for r in records
    ]
