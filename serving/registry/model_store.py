"""Model packages in the object store, and this host's unpacked copies of them.

A registered package is two objects, `model.onnx` and `package.json`, each stored under the
sha256 of its bytes (the training checkpoint, when given, is a third). A package with a surface
branch adds `surface.onnx`, stored the same way; package.json names its hash. One with an
anomaly model adds its three files: package.json names anomaly.json's hash, which names the
other two's. A service
process loads a package from a local folder named after those two hashes, written once
(temporary folder, then rename) from bytes whose hashes were checked on the way: a corrupt
object never becomes a folder. `qc_model.package.load_package` then checks everything inside
the package itself.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from qc_model.anomaly import ANOMALY_BANKS, ANOMALY_META, ANOMALY_ONNX, AnomalyMeta
from qc_model.identity import REFS_FILE
from qc_model.manifest import sha256_file
from qc_model.package import (
    META_FILE,
    MODEL_FILE,
    SURFACE_FILE,
    PackageError,
    PackageMeta,
    read_meta,
)
from serving.store.storage import ObjectStore, StorageError


@dataclass(frozen=True)
class StoredPackage:
    meta: PackageMeta
    sha256: str  # model.onnx as stored (its own hash, whatever package.json claims)
    meta_sha256: str
    checkpoint_sha256: str | None

    @property
    def version(self) -> str:
        return model_version(self.meta)


def model_version(meta: PackageMeta) -> str:
    """The version a package's verdicts carry (serving.inspection.model_inspector uses the same)."""
    return f"{meta.name}@{meta.version}"[:64]


def put_package(store: ObjectStore, folder: Path, checkpoint: Path | None = None) -> StoredPackage:
    """Copy a package folder (and optionally its checkpoint) into the store.

    Only package.json must be readable here (it names the version); whether the package loads
    is checked where it is loaded, so a package that is corrupt is refused there with a reason.
    """
    meta = read_meta(folder)
    model = Path(folder) / MODEL_FILE
    if not model.is_file():
        raise PackageError(f"{folder}: {MODEL_FILE} is missing")
    ckpt_key = None
    if checkpoint is not None:
        if not checkpoint.is_file():
            raise PackageError(f"checkpoint not found: {checkpoint}")
        digest = sha256_file(checkpoint)
        expected = meta.training.get("checkpoint_sha256")
        if expected and expected != digest:
            raise PackageError(
                f"{checkpoint}: sha256 {digest[:12]}… is not the checkpoint {folder} was "
                f"exported from ({str(expected)[:12]}…)"
            )
        ckpt_key = _put(store, checkpoint)
    if meta.surface is not None:
        _put_named(store, Path(folder), SURFACE_FILE, meta.surface.onnx_sha256, "a surface branch")
    if meta.anomaly is not None:
        for name, expected in _anomaly_files(Path(folder), meta.anomaly.meta_sha256):
            path = Path(folder) / name
            if not path.is_file():
                raise PackageError(f"{folder}: the package's anomaly model lacks {name}")
            if _put(store, path) != expected:
                raise PackageError(f"{path}: its sha256 is not the one its package names")
    if meta.identity is not None:
        _put_named(store, Path(folder), REFS_FILE, meta.identity.refs_sha256, "design references")
    return StoredPackage(
        meta=meta,
        sha256=_put(store, model),
        meta_sha256=_put(store, Path(folder) / META_FILE),
        checkpoint_sha256=ckpt_key,
    )


def _anomaly_files(
    folder: Path | None, meta_sha256: str, data: bytes | None = None
) -> list[tuple[str, str]]:
    """(file name, sha256) of an anomaly model's files, from its anomaly.json (read from
    `folder`, or given as `data`)."""
    try:
        text = data if data is not None else (Path(str(folder)) / ANOMALY_META).read_bytes()
        meta = AnomalyMeta.model_validate_json(text)
    except (OSError, ValueError) as exc:
        raise PackageError(f"{ANOMALY_META} of the package cannot be read: {exc}") from None
    files = [(ANOMALY_META, meta_sha256), (ANOMALY_BANKS, meta.banks_sha256)]
    if meta.onnx_sha256 is not None:  # a model of source "branch" reads surface.onnx instead
        files.insert(1, (ANOMALY_ONNX, meta.onnx_sha256))
    return files


def _put_named(store: ObjectStore, folder: Path, name: str, expected: str, what: str) -> None:
    """Store the package's file `name`, which package.json names (as `what`) by its sha256."""
    path = folder / name
    if not path.is_file():
        raise PackageError(f"{folder}: package.json names {what}, {name} is missing")
    if _put(store, path) != expected:
        raise PackageError(f"{path}: its sha256 is not the one package.json names")


def _put(store: ObjectStore, path: Path) -> str:
    try:
        return store.put(path.read_bytes())
    except OSError as exc:
        raise PackageError(f"{path}: cannot be read: {exc}") from None
    except StorageError as exc:
        raise PackageError(f"cannot store {path.name}: {exc}") from None


def _get(store: ObjectStore, key: str, what: str) -> bytes:
    try:
        data = store.get(key)
    except KeyError:
        raise PackageError(f"{what} {key[:12]}… is not in the object store") from None
    except StorageError as exc:
        raise PackageError(f"{what} {key[:12]}…: {exc}") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != key:
        raise PackageError(
            f"{what} {key[:12]}… in the object store is corrupt (its bytes hash to {digest[:12]}…)"
        )
    return data


def unpack(store: ObjectStore, cache_root: Path, sha256: str, meta_sha256: str) -> Path:
    """This host's folder of the package (written on first use); PackageError if impossible."""
    folder = cache_root / f"{sha256[:16]}-{meta_sha256[:16]}"
    meta_path = folder / META_FILE
    if meta_path.is_file() and (folder / MODEL_FILE).is_file():
        # model.onnx (and surface.onnx) are checked against package.json by load_package on
        # every load; this checks that package.json is still the registered one.
        if sha256_file(meta_path) == meta_sha256:
            return folder
        shutil.rmtree(folder, ignore_errors=True)
    model = _get(store, sha256, MODEL_FILE)
    meta = _get(store, meta_sha256, META_FILE)
    surface = None
    extra: dict[str, bytes] = {}
    try:
        parsed: PackageMeta | None = PackageMeta.model_validate_json(meta)
    except ValueError:
        parsed = None  # load_package says what is wrong with it, with the file's name
    branch = parsed.surface if parsed is not None else None
    if branch is not None:
        surface = _get(store, branch.onnx_sha256, SURFACE_FILE)
    if parsed is not None and parsed.anomaly is not None:
        key = parsed.anomaly.meta_sha256
        extra[ANOMALY_META] = _get(store, key, ANOMALY_META)
        for name, sha in _anomaly_files(None, key, extra[ANOMALY_META])[1:]:
            extra[name] = _get(store, sha, name)
    if parsed is not None and parsed.identity is not None:
        extra[REFS_FILE] = _get(store, parsed.identity.refs_sha256, REFS_FILE)
    try:
        cache_root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=cache_root, prefix=".unpack-"))
        try:
            (tmp / MODEL_FILE).write_bytes(model)
            if surface is not None:
                (tmp / SURFACE_FILE).write_bytes(surface)
            for name, data in extra.items():
                (tmp / name).write_bytes(data)
            (tmp / META_FILE).write_bytes(meta)
            try:
                tmp.rename(folder)
            except OSError:
                if not (folder / META_FILE).is_file():  # not another process winning the race
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError as exc:
        raise PackageError(f"cannot unpack the package into {cache_root}: {exc}") from None
    return folder


def fetch_checkpoint(store: ObjectStore, key: str, dest: Path) -> Path:
    """Write a stored checkpoint to `dest` (checked against its hash)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(_get(store, key, "checkpoint"))
    return dest
