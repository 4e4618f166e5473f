"""Content-addressed local object store: keys, atomic writes, no paths from outside."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from serving.store.storage import LocalObjectStore, StorageError


def test_put_get_is_content_addressed(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "photos")
    key = store.put(b"photo bytes")
    assert key == hashlib.sha256(b"photo bytes").hexdigest()
    assert store.path(key) == tmp_path / "photos" / key[:2] / key[2:4] / key
    assert store.get(key) == b"photo bytes" and store.exists(key)
    assert store.put(b"photo bytes") == key  # a second put is a no-op
    files = [p for p in (tmp_path / "photos").rglob("*") if p.is_file()]
    assert files == [store.path(key)]


def test_missing_key_is_keyerror(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    with pytest.raises(KeyError):
        store.get("0" * 64)
    assert not store.exists("0" * 64)


@pytest.mark.parametrize("key", ["../../etc/passwd", "A" * 64, "0" * 63, "", "0" * 64 + "/x"])
def test_only_sha256_keys_are_paths(tmp_path: Path, key: str) -> None:
    with pytest.raises(StorageError):
        LocalObjectStore(tmp_path).get(key)


def test_failed_write_leaves_no_partial_object(tmp_path: Path, monkeypatch) -> None:
    store = LocalObjectStore(tmp_path)

    def crash(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(StorageError, match="disk full"):
        store.put(b"x" * 1000)
    key = hashlib.sha256(b"x" * 1000).hexdigest()
    assert not store.exists(key)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []  # the temp file is gone too


def test_truncated_object_is_rewritten(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    key = store.put(b"abcdef")
    store.path(key).write_bytes(b"abc")  # damaged by something outside the store
    store.put(b"abcdef")
    assert store.get(key) == b"abcdef"


def test_check_reports_unwritable_root(tmp_path: Path) -> None:
    LocalObjectStore(tmp_path / "ok").check()
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(StorageError, match="not writable"):
        LocalObjectStore(tmp_path / "file" / "photos").check()


def test_sweep_deletes_only_temp_files_of_dead_writers(tmp_path: Path) -> None:
    import subprocess
    import sys

    store = LocalObjectStore(tmp_path)
    key = store.put(b"a photo")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    folder = store.path(key).parent
    killed = folder / f".put-{int(dead.stdout)}-abc.tmp"  # its writer was killed mid-put
    writing = folder / f".put-{os.getpid()}-def.tmp"  # this process is writing it now
    other = folder / "notes.txt"  # not ours to judge
    for p in (killed, writing, other):
        p.write_bytes(b"partial")
    assert store.sweep_interrupted() == [killed]
    assert not killed.exists() and writing.exists() and other.exists()
    assert {k for k, _ in store.walk()} == {key, None}
