"""Find the files and labels of a labelled batch: an ImageFolder tree or a CSV list."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

from qc_model.errors import DataError

CSV_REQUIRED = ("path", "label")
CSV_OPTIONAL = ("design", "piece_id", "artisan_id")
_LABEL_SEPARATORS = re.compile(r"[;|]")


@dataclass(frozen=True)
class Candidate:
    """A file the batch names, with its labels as written (not yet checked)."""

    file: Path
    rel: str  # where it was found, relative to the source, for reports only
    labels: tuple[str, ...]
    design: str | None = None
    piece_id: str | None = None
    artisan_id: str | None = None


@dataclass(frozen=True)
class Skipped:
    file: str
    reason: str
    detail: str


def scan_source(source: Path) -> tuple[str, list[Candidate], list[Skipped]]:
    """(kind, candidates, skipped) for an ImageFolder root or a CSV file."""
    if not source.exists():
        raise DataError(f"import source not found: {source}")
    if source.is_dir():
        return ("imagefolder", *scan_image_folder(source))
    if source.suffix.lower() == ".csv":
        return ("csv", *scan_csv(source))
    raise DataError(f"{source}: expected an ImageFolder root (root/<label>/*) or a .csv file")


def _hidden(rel: Path) -> bool:
    return any(part.startswith(".") for part in rel.parts)


def scan_image_folder(root: Path) -> tuple[list[Candidate], list[Skipped]]:
    root_resolved = root.resolve()
    found: list[Candidate] = []
    skipped: list[Skipped] = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_dir():
            continue
        if _hidden(rel):
            skipped.append(Skipped(rel.as_posix(), "hidden", "hidden file or folder"))
            continue
        if len(rel.parts) < 2:
            skipped.append(
                Skipped(rel.as_posix(), "not_in_label_folder", "files must sit in root/<label>/")
            )
            continue
        if not path.resolve().is_relative_to(root_resolved):
            skipped.append(Skipped(rel.as_posix(), "outside_source", "link to outside the root"))
            continue
        found.append(Candidate(path, rel.as_posix(), (rel.parts[0].strip(),)))
    return found, skipped


def split_labels(text: str) -> tuple[str, ...]:
    """'scratch; tarnish' or 'scratch|tarnish' -> ('scratch', 'tarnish'); empties dropped."""
    return tuple(p.strip() for p in _LABEL_SEPARATORS.split(text) if p.strip())


def scan_csv(path: Path) -> tuple[list[Candidate], list[Skipped]]:
    folder = path.parent.resolve()
    try:
        # utf-8-sig: spreadsheet programs often start CSV exports with a byte-order mark.
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot be read as UTF-8 text: {exc}") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = [c.strip() for c in (reader.fieldnames or [])]
    missing = [c for c in CSV_REQUIRED if c not in columns]
    if missing:
        raise DataError(
            f"{path}: missing required column(s) {', '.join(missing)}; "
            f"the header must be path,label[,{','.join(CSV_OPTIONAL)}] (found: {','.join(columns)})"
        )
    unknown = [c for c in columns if c not in CSV_REQUIRED + CSV_OPTIONAL]
    if unknown:
        raise DataError(
            f"{path}: unknown column(s) {', '.join(unknown)}; allowed: "
            f"{', '.join(CSV_REQUIRED + CSV_OPTIONAL)}"
        )
    reader.fieldnames = columns
    found: list[Candidate] = []
    skipped: list[Skipped] = []
    for line, row in enumerate(reader, start=2):
        if None in row:
            raise DataError(f"{path}:{line}: more fields than the header has columns")
        # Spreadsheets made on Windows write photos\a.jpg; the folder separator means the same.
        raw = (row.get("path") or "").strip().replace("\\", "/")
        where = f"{path.name}:{line}"
        if not raw:
            skipped.append(Skipped(where, "empty_path", "row has no path"))
            continue
        target = (folder / raw).resolve()
        if Path(raw).is_absolute() or not target.is_relative_to(folder):
            raise DataError(
                f"{path}:{line}: path {raw!r} points outside the CSV's folder {folder}; "
                "paths must be relative and stay inside it"
            )
        if not target.is_file():
            skipped.append(Skipped(raw, "missing", f"no such file (row {line})"))
            continue
        found.append(
            Candidate(
                file=target,
                rel=raw,
                labels=split_labels(row.get("label") or ""),
                design=(row.get("design") or "").strip() or None,
                piece_id=(row.get("piece_id") or "").strip() or None,
                artisan_id=(row.get("artisan_id") or "").strip() or None,
            )
        )
    return found, skipped
