"""Manifest.restrict (a class view of a data set) and merge (several data sets, split renames)."""

from __future__ import annotations

from pathlib import Path

import pytest

from qc_model.manifest import Header, Manifest, ManifestError, Record, merge


def _manifest(name: str, splits: list[str], labels: list[list[str]]) -> Manifest:
    records = [
        Record(
            id=f"{name}-{i}",
            image=f"img_{i}.png",
            sha256=f"{i:064x}",
            width=10,
            height=10,
            piece_id=f"{name}-p{i}",
            labels=lab,
            masks={lab[0]: f"mask_{i}.png"} if lab else {},
            split=split,  # type: ignore[arg-type]
            source="synthetic",
        )
        for i, (split, lab) in enumerate(zip(splits, labels, strict=True))
    ]
    return Manifest(header=Header(name=name), records=records)


def test_restrict_keeps_photos_and_drops_other_labels() -> None:
    m = _manifest("a", ["train"] * 3, [["scratch", "wrong_size"], ["wrong_size"], []])
    view = m.restrict(["scratch", "bent"])
    assert view.header.classes == ["scratch", "bent"]
    assert [r.labels for r in view.records] == [["scratch"], [], []]
    assert view.records[0].masks == {"scratch": "mask_0.png"}
    assert view.header.version == view.content_hash() != m.content_hash()
    assert m.restrict(list(m.header.classes)) is m
    with pytest.raises(ManifestError, match="subset"):
        m.restrict(["not_a_class"])


def test_merge_rewrites_paths_and_renames_splits(tmp_path: Path) -> None:
    _manifest("s1", ["train", "val", "test"], [["scratch"], [], ["bent"]]).write(
        tmp_path / "s1" / "manifest.jsonl"
    )
    _manifest("s2", ["train", "val"], [[], ["pitting"]]).write(tmp_path / "s2" / "manifest.jsonl")
    out = tmp_path / "all.jsonl"
    m = merge("all", out, [(tmp_path / "s1", {"test": "-"}), (tmp_path / "s2", {"*": "test"})])
    assert [(r.id, r.split) for r in m.records] == [
        ("s1-0", "train"),
        ("s1-1", "val"),
        ("s2-0", "test"),
        ("s2-1", "test"),
    ]
    assert m.records[0].image == "s1/img_0.png" and m.records[3].masks == {
        "pitting": "s2/mask_1.png"
    }
    assert Manifest.read(out).header.version == m.header.version
    assert [b["manifest"] for b in m.header.recipe["built_from"]] == [
        str(tmp_path / "s1"),
        str(tmp_path / "s2"),
    ]


def test_merge_refuses_bad_splits_outside_folders_and_id_collisions(tmp_path: Path) -> None:
    _manifest("s1", ["train"], [[]]).write(tmp_path / "d" / "s1" / "manifest.jsonl")
    with pytest.raises(ManifestError, match="unknown split 'nope'"):
        merge("x", tmp_path / "d" / "x.jsonl", [(tmp_path / "d" / "s1", {"train": "nope"})])
    with pytest.raises(ManifestError, match="must lie inside"):
        merge("x", tmp_path / "d" / "s1" / "deeper" / "x.jsonl", [(tmp_path / "d" / "s1", {})])
    with pytest.raises(ManifestError, match="duplicate record ids"):
        merge("x", tmp_path / "d" / "x.jsonl", [(tmp_path / "d" / "s1", {})] * 2)
    assert not (tmp_path / "d" / "x.jsonl").exists()
