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
    """Copies of `records` with `split` set. Records that already carry a split keep it, and
    the other photos of their piece join them."""
    fractions = fractions or {"train": 0.7, "val": 0.15, "test": 0.15}
    total = sum(fractions.values())
    if total <= 0 or any(v < 0 for v in fractions.values()):
        raise ValueError(f"split fractions must be non-negative and sum above 0: {fractions}")
    names = list(fractions)

    # A piece with one photo already placed keeps all its photos there: a piece split across
    # holdout and train would leak the holdout.
    preset: dict[str, str] = {}
    for r in records:
        if r.split is not None:
            preset.setdefault(r.piece_id, r.split)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(records):
        if r.split is None and r.piece_id not in preset:
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
        # Ties broken per stratum, not by split order: otherwise every small stratum hands its
        # spare piece to the same split (val) and the next one (test) gets none of them.
        order = sorted(
            range(len(names)),
            key=lambda j: (-(exact[j] - counts[j]), _rank(seed, f"{key}/{names[j]}")),
        )
        for j in order[: n - sum(counts)]:
            counts[j] += 1
        # A rare label with at least one piece per split must reach every split: a test split
        # without it cannot measure it. Pigeonhole guarantees a donor with two or more pieces.
        wanted = [j for j, s in enumerate(names) if fractions[s] > 0]
        if n >= len(wanted):
            for j in wanted:
                if counts[j] == 0:
                    donor = max(range(len(names)), key=lambda k: (counts[k], -k))
                    counts[donor] -= 1
                    counts[j] += 1
        start = 0
        for s, c in zip(names, counts, strict=True):
            for p in pieces[start : start + c]:
                piece_split[p] = s
            start += c

    piece_split.update(preset)
    return [
        r if r.split is not None else r.model_copy(update={"split": piece_split[r.piece_id]})
        for r in records
    ]
