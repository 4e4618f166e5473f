"""Tests of grouped, stratified, reproducible splits."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from qc_model.manifest import Record
from qc_model.splits import assign_splits


def _records(pieces: dict[str, list[str]], photos_per_piece: int = 2) -> list[Record]:
    """`photos_per_piece` photos for each piece id, labelled as given."""
    return [
        Record(
            id=f"{piece}-{k}",
            image=f"images/{piece}-{k}.jpg",
            sha256="0" * 64,
            width=10,
            height=10,
            piece_id=piece,
            labels=labels,
            source="synthetic",
        )
        for piece, labels in pieces.items()
        for k in range(photos_per_piece)
    ]


def _mixed() -> list[Record]:
    pieces = {f"good{i}": [] for i in range(200)}
    pieces |= {f"scr{i}": ["scratch"] for i in range(60)}
    pieces |= {f"bent{i}": ["bent"] for i in range(3)}
    pieces |= {f"pit{i}": ["pitting", "scratch"] for i in range(4)}
    return _records(pieces, photos_per_piece=3)


def _by_piece(records: list[Record]) -> dict[str, set[str | None]]:
    out: dict[str, set[str | None]] = defaultdict(set)
    for r in records:
        out[r.piece_id].add(r.split)
    return out


def test_no_piece_in_two_splits() -> None:
    out = assign_splits(_mixed(), seed=0)
    assert all(r.split in {"train", "val", "test"} for r in out)
    assert all(len(splits) == 1 for splits in _by_piece(out).values())


def test_reproducible_and_seed_dependent() -> None:
    recs = _mixed()
    a = [r.split for r in assign_splits(recs, seed=7)]
    assert a == [r.split for r in assign_splits(recs, seed=7)]
    b = [r.split for r in assign_splits(recs, seed=8)]
    assert a != b
    # The input is not modified.
    assert all(r.split is None for r in recs)


def test_fractions_roughly_respected() -> None:
    recs = _records({f"p{i}": [] for i in range(400)}, photos_per_piece=1)
    sizes = Counter(r.split for r in assign_splits(recs, {"train": 0.6, "val": 0.1, "test": 0.3}))
    assert sizes == {"train": 240, "val": 40, "test": 120}
    sizes = Counter(r.split for r in assign_splits(_mixed()))
    n = sum(sizes.values())
    for split, frac in {"train": 0.7, "val": 0.15, "test": 0.15}.items():
        assert abs(sizes[split] / n - frac) < 0.03, sizes


@pytest.mark.parametrize("seed", range(5))
def test_rare_labels_reach_every_split(seed: int) -> None:
    out = assign_splits(_mixed(), seed=seed)
    for label in ("bent", "pitting"):
        splits = {r.split for r in out if label in r.labels}
        assert splits == {"train", "val", "test"}, (label, splits)


def test_too_few_pieces_go_to_train_first() -> None:
    out = assign_splits(_records({"only": ["bent"]}))
    assert {r.split for r in out} == {"train"}


def test_preassigned_splits_kept_and_their_pieces_follow() -> None:
    recs = _mixed()
    recs[0] = recs[0].model_copy(update={"split": "holdout"})  # first photo of piece good0
    recs[10] = recs[10].model_copy(update={"split": "test"})
    out = assign_splits(recs, seed=1)
    assert out[0].split == "holdout" and out[10].split == "test"
    assert {r.split for r in out if r.piece_id == recs[0].piece_id} == {"holdout"}
    assert {r.split for r in out if r.piece_id == recs[10].piece_id} == {"test"}
    assert all(len(s) == 1 for s in _by_piece(out).values())


def test_bad_fractions_refused() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        assign_splits(_mixed(), {"train": -1.0, "test": 0.5})
