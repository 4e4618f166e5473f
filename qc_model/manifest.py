"""Dataset manifests: one JSONL file per dataset version, a header line then one line per photo.

The version id is a content hash of the records and the recipe, so the same data made the same
way always carries the same id, and training runs can name exactly what they learned from.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from qc_model.taxonomy import DEFECT_LABELS, TAXONOMY_VERSION

Split = Literal["train", "val", "test", "holdout"]
Source = Literal["synthetic", "imported", "reviewed"]
Task = Literal["multilabel", "single_label"]
GOOD = "good"  # the class name of a defect-free photo in single-label data


def _safe_relative(path: str) -> str:
    p = PurePosixPath(path)
    if not path or p.is_absolute() or ".." in p.parts or "\\" in path:
        raise ValueError(f"must be a relative POSIX path inside the dataset: {path!r}")
    return path


class Record(BaseModel):
    """One photo and what is known about it."""

    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, Field(min_length=1, max_length=200)]
    image: str
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    width: Annotated[int, Field(ge=1)]
    height: Annotated[int, Field(ge=1)]
    design_id: str | None = None
    piece_id: Annotated[str, Field(min_length=1)]
    artisan_id: str | None = None
    # Multi-label: the defects present (empty for a good piece). Single-label: exactly one class.
    labels: list[str] = Field(default_factory=list)
    # Defect label -> relative path of a binary mask PNG (same size as the image).
    masks: dict[str, str] = Field(default_factory=dict)
    # Capture conditions present in the photo (names from taxonomy.CAPTURE_CONDITIONS).
    capture: list[str] = Field(default_factory=list)
    split: Split | None = None
    source: Source
    # Ground truth and provenance that do not fit the fields above (measured size, bbox, ...).
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("image")
    @classmethod
    def _image_path(cls, v: str) -> str:
        return _safe_relative(v)

    @field_validator("masks")
    @classmethod
    def _mask_paths(cls, v: dict[str, str]) -> dict[str, str]:
        for path in v.values():
            _safe_relative(path)
        return v


class Header(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["kito-manifest"] = "kito-manifest"
    format_version: Literal[1] = 1
    version: str = ""
    name: str
    task: Task = "multilabel"
    classes: list[str] = Field(default_factory=lambda: list(DEFECT_LABELS))
    taxonomy_version: str = TAXONOMY_VERSION
    # How the data set was made: command, options, seed, parent versions.
    recipe: dict[str, Any] = Field(default_factory=dict)
    # Single-label imports: the source's name for "no defect" (e.g. "functional"), stored as
    # the class GOOD so every consumer knows which class is not a defect. None: not imported
    # that way (manifests written before this field load unchanged, with the same version).
    good_label: str | None = None


class ManifestError(ValueError):
    """A manifest that cannot be used; the message names the file, line and field."""


class Manifest(BaseModel):
    header: Header
    records: list[Record]

    @model_validator(mode="after")
    def _check(self) -> Manifest:
        ids = Counter(r.id for r in self.records)
        dup = [i for i, n in ids.items() if n > 1]
        if dup:
            raise ValueError(f"duplicate record ids: {dup[:5]}")
        repeated = sorted(c for c, n in Counter(self.header.classes).items() if n > 1)
        if repeated:
            # A repeated class would give one label two output heads.
            raise ValueError(f"classes listed more than once: {repeated}")
        allowed = set(self.header.classes)
        if self.header.task == "multilabel":
            taxonomy = set(DEFECT_LABELS)
            outside = allowed - taxonomy
            if outside:
                raise ValueError(f"multilabel classes not in the taxonomy: {sorted(outside)}")
        for r in self.records:
            bad = [label for label in r.labels if label not in allowed]
            if bad:
                raise ValueError(f"record {r.id}: labels {bad} are not among the classes")
            if self.header.task == "single_label" and len(r.labels) != 1:
                raise ValueError(f"record {r.id}: single-label data needs exactly one label")
        return self

    # -- identity ---------------------------------------------------------------------------
    def content_hash(self) -> str:
        h = hashlib.sha256()
        head = self.header.model_dump(exclude={"version"})
        if head.get("good_label") is None:
            head.pop("good_label", None)  # older manifests keep the version they were written with
        h.update(json.dumps(head, sort_keys=True, separators=(",", ":")).encode())
        for r in self.records:
            h.update(b"\n")
            h.update(r.model_dump_json().encode())
        return h.hexdigest()[:16]

    def with_version(self) -> Manifest:
        header = self.header.model_copy(update={"version": self.content_hash()})
        return Manifest(header=header, records=self.records)

    # -- queries ----------------------------------------------------------------------------
    def split(self, name: str) -> list[Record]:
        return [r for r in self.records if r.split == name]

    def restrict(self, classes: list[str] | tuple[str, ...]) -> Manifest:
        """The same photos labelled with `classes` only (a subset of this manifest's classes).

        Multi-label only: a photo whose labels all fall outside `classes` becomes a good photo
        for this view, e.g. a wrong-size piece for a network that judges surfaces, not sizes.
        """
        wanted = list(classes)
        if list(self.header.classes) == wanted:
            return self
        if self.header.task != "multilabel":
            raise ManifestError("only multi-label manifests can be restricted to fewer classes")
        extra = [c for c in wanted if c not in self.header.classes]
        if extra or not wanted:
            raise ManifestError(
                f"classes {extra or wanted} are not a non-empty subset of the manifest's "
                f"{list(self.header.classes)}"
            )
        keep = set(wanted)
        records = [
            r.model_copy(
                update={
                    "labels": [label for label in r.labels if label in keep],
                    "masks": {k: v for k, v in r.masks.items() if k in keep},
                }
            )
            for r in self.records
        ]
        header = self.header.model_copy(update={"classes": wanted, "version": ""})
        return Manifest(header=header, records=records).with_version()

    def class_counts(self, split: str | None = None) -> dict[str, int]:
        counts = Counter[str]()
        for r in self.records:
            if split is None or r.split == split:
                counts.update(r.labels if r.labels else [GOOD])
        return dict(counts)

    # -- files ------------------------------------------------------------------------------
    def write(self, path: Path | str) -> Manifest:
        """Write atomically (temp file + rename) and return the versioned manifest."""
        m = self.with_version()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".manifest-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                exclude = {"good_label"} if m.header.good_label is None else set()
                f.write(m.header.model_dump_json(exclude=exclude) + "\n")
                for r in m.records:
                    f.write(r.model_dump_json() + "\n")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return m

    @classmethod
    def read(cls, path: Path | str) -> Manifest:
        path = Path(path)
        if path.is_dir():
            path = path / "manifest.jsonl"
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ManifestError(f"{path}: cannot be read: {exc}") from None
        if not lines:
            raise ManifestError(f"{path}: empty file, expected a header line")
        try:
            header = Header.model_validate_json(lines[0])
        except ValidationError as exc:
            raise ManifestError(f"{path}:1: bad header: {_first_error(exc)}") from None
        records = []
        for n, line in enumerate(lines[1:], start=2):
            if not line.strip():
                continue
            try:
                records.append(Record.model_validate_json(line))
            except ValidationError as exc:
                raise ManifestError(f"{path}:{n}: {_first_error(exc)}") from None
        try:
            m = cls(header=header, records=records)
        except ValidationError as exc:
            raise ManifestError(f"{path}: {_first_error(exc)}") from None
        if header.version and header.version != m.content_hash():
            raise ManifestError(
                f"{path}: version {header.version} does not match its content "
                f"({m.content_hash()}); the file was edited after it was written"
            )
        return m


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    return f"field '{loc}': {err['msg']}" if loc else err["msg"]


def sha256_file(path: Path | str, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def checksum_mismatch(path: Path, expected: str, named_in: str) -> str | None:
    """Why `path` is not the file `named_in` (package.json, anomaly.json) vouches for, or None."""
    digest = sha256_file(path)
    if digest == expected:
        return None
    return (
        f"{path}: checksum {digest[:12]}… does not match {named_in} ({expected[:12]}…); "
        "the file is corrupt or was replaced"
    )


def _prefix(src: Path, base: Path) -> str:
    """The path from `base` (a folder that will hold a manifest) to data set `src`'s folder."""
    folder = (src if src.is_dir() else src.parent).resolve()
    try:
        return folder.relative_to(base).as_posix()
    except ValueError:
        raise ManifestError(
            f"{src}: must lie inside {base}, the folder of the written manifest"
        ) from None


def relocate(r: Record, prefix: str) -> Record:
    """`r` with its image and mask paths seen from a manifest `prefix` above its data set."""

    def move(path: str) -> str:
        return path if prefix == "." else f"{prefix}/{path}"

    return r.model_copy(
        update={"image": move(r.image), "masks": {k: move(v) for k, v in r.masks.items()}}
    )


def relocated(src: Path | str, out: Path | str, records: list[Record]) -> list[Record]:
    """`records` of data set `src` with paths rewritten for a manifest written at `out`."""
    prefix = _prefix(Path(src), Path(out).parent.resolve())
    return [relocate(r, prefix) for r in records]


def merge(
    name: str,
    out: Path,
    sources: list[tuple[Path, dict[str, str]]],
) -> Manifest:
    """One manifest at `out` from several data sets, image paths rewritten relative to `out`.

    Each source is (manifest path or folder, split mapping); the mapping renames splits, e.g.
    {"*": "test"} puts every photo of a held-out set into `test`, {"test": "train"} folds a
    generator's test split into training, {"test": "-"} drops it. All sources must share the
    task, classes and taxonomy version; record ids must not collide.
    """
    if not sources:
        raise ManifestError("merge needs at least one source")
    out = Path(out)
    base = out.parent.resolve()
    records: list[Record] = []
    headers: list[Header] = []
    built_from = []
    allowed = {"train", "val", "test", "holdout", "-"}
    for src, mapping in sources:
        bad = sorted(set(mapping.values()) - allowed)
        if bad:
            raise ManifestError(f"{src}: unknown split {bad[0]!r}; use one of {sorted(allowed)}")
        m = Manifest.read(src)
        prefix = _prefix(Path(src), base)
        if headers and (
            m.header.task,
            m.header.classes,
            m.header.taxonomy_version,
        ) != (headers[0].task, headers[0].classes, headers[0].taxonomy_version):
            raise ManifestError(f"{src}: task, classes or taxonomy differ from the first source")
        headers.append(m.header)
        built_from.append({"manifest": str(src), "version": m.header.version, "splits": mapping})
        for r in m.records:
            split = mapping.get(r.split or "", mapping.get("*", r.split))
            if split == "-":
                continue
            records.append(relocate(r, prefix).model_copy(update={"split": split}))
    recipe = {"command": "merge", "built_from": built_from}
    header = headers[0].model_copy(update={"name": name, "version": "", "recipe": recipe})
    try:
        merged = Manifest(header=header, records=records)
    except ValidationError as exc:
        raise ManifestError(f"merged manifest: {_first_error(exc)}") from None
    return merged.write(out)
