"""The frozen holdout ("golden set"): one data set per taxonomy version that no run trains on.

It lives in `<holdout dir>/taxonomy-<version>/` (manifest.jsonl + the photos), is written once
by `kito models holdout` and never again, and every training run checks its manifest against it
by record id and by photo sha256 (the same photo under another id is still the holdout photo).
Champion and challenger are compared on it, so the comparison means the same thing every time.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from qc_model.errors import DataError
from qc_model.manifest import Manifest
from qc_model.taxonomy import TAXONOMY_VERSION


class HoldoutError(DataError):
    """A training manifest that includes holdout photos, or a holdout that cannot be made."""


def default_holdout_dir() -> Path:
    """$KITO_HOLDOUT_DIR, else $KITO_DATA_DIR/holdout (the service's default), else
    kito-data/holdout: the same place `kito serve` and `kito retrain` use."""
    explicit = os.environ.get("KITO_HOLDOUT_DIR")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("KITO_DATA_DIR") or "kito-data") / "holdout"


def holdout_folder(root: Path, taxonomy_version: str = TAXONOMY_VERSION) -> Path:
    return Path(root) / f"taxonomy-{taxonomy_version}"


def load_holdout(root: Path, taxonomy_version: str = TAXONOMY_VERSION) -> Manifest | None:
    """The frozen holdout of a taxonomy version, or None if none was frozen."""
    path = holdout_folder(root, taxonomy_version) / "manifest.jsonl"
    return Manifest.read(path) if path.is_file() else None


def check_disjoint(manifest: Manifest, holdout: Manifest, source: object) -> None:
    """Refuse a training manifest that shares a record id or a photo with the holdout."""
    ids = {r.id for r in holdout.records}
    shas = {r.sha256 for r in holdout.records}
    leaked = [r.id for r in manifest.records if r.id in ids or r.sha256 in shas]
    if leaked:
        more = f" and {len(leaked) - 3} more" if len(leaked) > 3 else ""
        raise HoldoutError(
            f"{source}: {len(leaked)} photos belong to the frozen holdout of taxonomy "
            f"{holdout.header.taxonomy_version} (e.g. {', '.join(leaked[:3])}{more}); "
            "no training run may include them"
        )


def check_against_default(manifest: Manifest, source: object, root: Path | None = None) -> bool:
    """`check_disjoint` against the holdout of the manifest's taxonomy, if one is frozen;
    True if there was one to check against."""
    holdout = load_holdout(root or default_holdout_dir(), manifest.header.taxonomy_version)
    if holdout is None:
        return False
    check_disjoint(manifest, holdout, source)
    return True


def freeze(source: Path, root: Path, split: str | None = None) -> Manifest:
    """Copy `source` (one split of it, or all) into the holdout of its taxonomy version.

    Refused if that holdout exists: it is frozen, so that champion and challenger of every
    later retraining are compared on the same photos.
    """
    m = Manifest.read(source)
    folder = holdout_folder(root, m.header.taxonomy_version)
    if folder.exists():
        raise HoldoutError(
            f"{folder}: the holdout of taxonomy {m.header.taxonomy_version} is frozen"
        )
    records = m.split(split) if split else list(m.records)
    if not records:
        raise HoldoutError(f"{source}: no photos{f' in split {split!r}' if split else ''}")
    base = Path(source) if Path(source).is_dir() else Path(source).parent
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for r in records:
            for rel in (r.image, *r.masks.values()):
                dest = tmp / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(base / rel, dest)
        header = m.header.model_copy(
            update={
                "name": folder.name,
                "version": "",
                "recipe": {
                    "command": "kito models holdout",
                    "from": str(source),
                    "from_version": m.header.version,
                    "split": split,
                },
            }
        )
        held = [r.model_copy(update={"split": "holdout"}) for r in records]
        frozen = Manifest(header=header, records=held).write(tmp / "manifest.jsonl")
        tmp.rename(folder)
    except FileNotFoundError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise HoldoutError(f"{source}: a listed file is missing: {exc.filename}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return frozen
