"""The frozen holdout: made once per taxonomy version, never part of a training manifest."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from qc_model.holdout import (
    HoldoutError,
    check_against_default,
    check_disjoint,
    default_holdout_dir,
    freeze,
    load_holdout,
)
from qc_model.manifest import Header, Manifest, Record


def _dataset(root: Path, n: int = 6, prefix: str = "r") -> Path:
    records = []
    for i in range(n):
        data = f"{prefix}{i}".encode()
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "images" / f"{prefix}{i}.jpg").write_bytes(data)
        records.append(
            Record(
                id=f"{prefix}{i}",
                image=f"images/{prefix}{i}.jpg",
                sha256=hashlib.sha256(data).hexdigest(),
                width=10,
                height=10,
                piece_id=f"{prefix}p{i}",
                labels=["scratch"] if i % 2 else [],
                split="test" if i < 3 else "train",
                source="synthetic",
            )
        )
    Manifest(header=Header(name="d"), records=records).write(root / "manifest.jsonl")
    return root


def test_freeze_copies_once_and_never_again(tmp_path: Path) -> None:
    src = _dataset(tmp_path / "src")
    frozen = freeze(src, tmp_path / "holdout", split="test")
    assert [r.id for r in frozen.records] == ["r0", "r1", "r2"]
    assert {r.split for r in frozen.records} == {"holdout"}
    folder = tmp_path / "holdout" / "taxonomy-1"
    assert (folder / "images" / "r1.jpg").read_bytes() == b"r1"
    assert load_holdout(tmp_path / "holdout") == Manifest.read(folder)
    with pytest.raises(HoldoutError, match="is frozen"):
        freeze(src, tmp_path / "holdout", split="train")
    assert load_holdout(tmp_path / "elsewhere") is None


def test_a_manifest_sharing_ids_or_photos_with_the_holdout_is_refused(tmp_path: Path) -> None:
    held = freeze(_dataset(tmp_path / "src"), tmp_path / "holdout", split="test")
    clean = Manifest.read(_dataset(tmp_path / "other", prefix="o"))
    check_disjoint(clean, held, "other")  # nothing shared: fine
    same_id = clean.model_copy(update={"records": [*clean.records, held.records[0]]})
    with pytest.raises(HoldoutError, match=r"1 photos belong to the frozen holdout.*r0"):
        check_disjoint(same_id, held, "train.jsonl")
    # The same photo under another id is still the holdout photo.
    renamed = held.records[1].model_copy(update={"id": "innocent"})
    same_photo = clean.model_copy(update={"records": [*clean.records, renamed]})
    with pytest.raises(HoldoutError, match="innocent"):
        check_disjoint(same_photo, held, "train.jsonl")


def test_default_location_follows_the_service_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from serving.core.settings import Settings

    monkeypatch.delenv("KITO_HOLDOUT_DIR", raising=False)
    monkeypatch.setenv("KITO_DATA_DIR", str(tmp_path / "data"))
    assert default_holdout_dir() == Settings().holdout_path == tmp_path / "data" / "holdout"
    monkeypatch.setenv("KITO_HOLDOUT_DIR", str(tmp_path / "h"))
    assert default_holdout_dir() == Settings().holdout_path == tmp_path / "h"
    src = _dataset(tmp_path / "src")
    assert check_against_default(Manifest.read(src), "src") is False  # none frozen yet
    freeze(src, tmp_path / "h", split="test")
    with pytest.raises(HoldoutError):
        check_against_default(Manifest.read(src), "src")
