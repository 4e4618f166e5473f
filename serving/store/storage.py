"""Content-addressed photo store: the key of a photo is the sha256 of its bytes.

`ObjectStore` is the narrow interface the service uses; `LocalObjectStore` keeps objects in a
folder (one machine). An S3-compatible store implements the same methods.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

_KEY = re.compile(r"^[0-9a-f]{64}$")


class StorageError(Exception):
    """The store cannot be used (folder missing and not creatable, disk full, bad key)."""


def content_key(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_key(key: str) -> str:
    # Keys become file names; only a sha256 hex digest is accepted, so no key can be a path.
    if not _KEY.match(key):
        raise StorageError(f"not a sha256 key: {key[:80]!r}")
    return key


class ObjectStore(Protocol):
    def put(self, data: bytes, key: str | None = None) -> str:
        """Store `data` under its sha256 key and return the key. If the key is present already
        only its last-modified time is renewed: the orphan sweep (serving.store.orphans) never
        deletes a key younger than its minimum age, and an upload reusing it is young again.
        `key`: `content_key(data)` where the caller has hashed the bytes already (an upload is
        hashed once); it is not checked again."""
        ...

    def get(self, key: str) -> bytes:
        """The bytes stored under `key`; `KeyError` if there are none."""
        ...

    def exists(self, key: str) -> bool: ...

    def check(self) -> None:
        """Raise `StorageError` if the store cannot be written (used by /readyz)."""
        ...

    def list_keys(self) -> Iterator[tuple[str, float]]:
        """Every stored object: (key, last-modified time in epoch seconds). For the sweep."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object under `key`; no error if there is none."""
        ...


class LocalObjectStore:
    """Objects in `root/ab/cd/<sha256>`; two levels of fan-out keep folders small."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        check_key(key)
        return self.root / key[:2] / key[2:4] / key

    def put(self, data: bytes, key: str | None = None) -> str:
        key = key or content_key(data)
        dest = self.path(key)
        if dest.is_file() and dest.stat().st_size == len(data):
            try:
                os.utime(dest)  # young again: the orphan sweep leaves it alone (see ObjectStore)
            except OSError:
                pass  # deleted between the check and now: written again below
            else:
                return key
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            # Write to a temporary file in the same folder, then rename: a reader never sees a
            # half-written photo, and a crash leaves only a stray *.tmp file.
            # The writer's pid in the name: a file left by a killed process can be told from one
            # being written now (sweep_interrupted).
            fd, tmp = tempfile.mkstemp(
                dir=dest.parent, prefix=f".put-{os.getpid()}-", suffix=".tmp"
            )
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, dest)
                _fsync_dir(dest.parent)  # the rename itself must survive a power cut
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise StorageError(f"cannot write photo {key[:12]} under {self.root}: {exc}") from exc
        return key

    def get(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            raise KeyError(key) from None

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def list_keys(self) -> Iterator[tuple[str, float]]:
        for key, path in self.walk():
            if key is not None:
                try:
                    yield key, path.stat().st_mtime
                except FileNotFoundError:
                    continue  # deleted while listing

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def walk(self) -> Iterator[tuple[str | None, Path]]:
        """Every file under the root: (key, path) for a stored object, (None, path) for anything
        else (a temporary file an interrupted write left behind). For `kito fsck`."""
        for path in sorted(self.root.rglob("*")):
            if not path.is_file():
                continue
            rel = path.relative_to(self.root).parts
            key = path.name
            is_object = (
                len(rel) == 3 and _KEY.match(key) and rel[0] == key[:2] and rel[1] == key[2:4]
            )
            yield (key if is_object else None), path

    def sweep_interrupted(self) -> list[Path]:
        """Delete the temporary files of writes whose process is gone (killed mid-put); they
        were never renamed into place, so nothing refers to them. Returns what was deleted."""
        gone = []
        for key, path in self.walk():
            if key is None and (pid := writer_pid(path)) is not None and not writer_alive(pid):
                path.unlink(missing_ok=True)
                gone.append(path)
        return gone

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".check-"):
                pass
        except OSError as exc:
            raise StorageError(f"photo folder {self.root} is not writable: {exc}") from exc


_TEMP = re.compile(r"^\.put-(\d+)-.*\.tmp$")


def writer_pid(path: Path) -> int | None:
    """The pid in a temporary file's name (`.put-<pid>-*.tmp`), or None for any other file."""
    m = _TEMP.match(path.name)
    return int(m.group(1)) if m else None


def writer_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # platforms without directory handles (Windows): rename is durable enough
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
