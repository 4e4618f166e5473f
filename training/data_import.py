"""Import a labelled batch (ImageFolder or CSV) as a data set: checked copies, manifest, report."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from qc_model.errors import DataError
from qc_model.manifest import GOOD, Header, Manifest, Record, Task
from qc_model.splits import assign_splits
from qc_model.taxonomy import DEFECT_LABELS
from training.image_integrity import BadImage, ImageInfo, check_image
from training.import_sources import Candidate, Skipped, scan_source

TASKS = ("auto", "multilabel", "single_label")
# Names a labelled batch commonly gives its defect-free photos; each becomes the class GOOD.
GOOD_ALIASES = ("good", "ok", "pass", "normal", "functional", "no_defect")
REPORT_NAME = "import_report.json"


@dataclass
class ImportResult:
    manifest: Manifest
    out: Path
    source: Path
    source_kind: str
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def manifest_path(self) -> Path:
        return self.out / "manifest.jsonl"

    @property
    def report_path(self) -> Path:
        return self.out / REPORT_NAME

    def skipped_by_reason(self) -> dict[str, int]:
        return dict(sorted(Counter(s.reason for s in self.skipped).items()))

    def summary(self) -> str:
        m = self.manifest
        lines = [
            f"imported {len(m.records)} photos ({m.header.task}, {self.source_kind}) "
            f"from {self.source} into {self.out}",
            f"skipped {len(self.skipped)} files" + (f" (listed in {self.report_path})"),
        ]
        lines += [f"  {reason}: {n}" for reason, n in self.skipped_by_reason().items()]
        counts = m.class_counts()
        classes = [GOOD, *m.header.classes] if m.header.task == "multilabel" else m.header.classes
        lines.append("per class:")
        lines += [f"  {c}: {counts.get(c, 0)}" for c in classes]
        splits = Counter(r.split for r in m.records)
        lines.append("splits: " + ", ".join(f"{s} {n}" for s, n in sorted(splits.items())))
        if m.header.good_label is not None:
            lines.append(f"'{m.header.good_label}' means no defect: stored as class '{GOOD}'")
        elif m.header.task == "single_label" and GOOD not in m.header.classes:
            lines.append(
                "warning: no label means 'no defect', so every photo counts as defective; "
                "name the good label with --good-label"
            )
        lines.append(f"manifest {self.manifest_path} (version {m.header.version})")
        return "\n".join(lines)


def _key(label: str) -> str:
    """Spelling-tolerant form for matching the taxonomy: 'Broken link' -> 'broken_link'."""
    return label.strip().lower().replace("-", "_").replace(" ", "_")


def find_good_label(candidates: list[Candidate], good_label: str | None) -> str | None:
    """The batch's own spelling of "no defect": `good_label` (must occur) or the one label
    that matches GOOD_ALIASES (case-insensitive); None when no label means "no defect"."""
    seen = sorted({lab for c in candidates for lab in c.labels})
    if good_label is not None:
        hits = [lab for lab in seen if _key(lab) == _key(good_label)]
        if not hits:
            raise DataError(
                f"--good-label {good_label!r}: no photo carries that label; "
                f"labels found: {', '.join(seen) or '(none)'}"
            )
    else:
        hits = [lab for lab in seen if _key(lab) in GOOD_ALIASES]
    if len(hits) > 1:
        raise DataError(
            f"several labels could mean 'no defect' ({', '.join(hits)}); "
            "name the one with --good-label"
        )
    return hits[0] if hits else None


def _as_good(candidates: list[Candidate], good: str) -> list[Candidate]:
    """Candidates with the batch's "no defect" label spelt GOOD."""
    return [
        replace(c, labels=tuple(GOOD if lab == good else lab for lab in c.labels))
        for c in candidates
    ]


def resolve_labels(
    candidates: list[Candidate], task: str
) -> tuple[Task, list[str], list[tuple[str, ...]]]:
    """(task, classes, labels per candidate) with the rules of `import_batch`."""
    taxonomy = set(DEFECT_LABELS)
    unknown = sorted(
        {lab for c in candidates for lab in c.labels if _key(lab) not in taxonomy | {GOOD}}
    )
    if task == "multilabel" or (task == "auto" and not unknown):
        if unknown:
            example = next(c.rel for c in candidates if set(c.labels) & set(unknown))
            raise DataError(
                f"labels not in the defect taxonomy: {', '.join(unknown)} (e.g. {example}); "
                f"known: {GOOD}, {', '.join(DEFECT_LABELS)}"
            )
        per: list[tuple[str, ...]] = []
        for c in candidates:
            keys = {_key(lab) for lab in c.labels}
            if GOOD in keys and len(keys) > 1:
                raise DataError(f"{c.rel}: labelled '{GOOD}' together with defects {sorted(keys)}")
            per.append(tuple(lab for lab in DEFECT_LABELS if lab in keys))
        return "multilabel", list(DEFECT_LABELS), per
    per = []
    for c in candidates:
        if len(c.labels) > 1:
            hint = f" (labels not in the taxonomy: {', '.join(unknown)})" if task == "auto" else ""
            raise DataError(
                f"{c.rel}: several labels {list(c.labels)} but the data is single-label{hint}"
            )
        per.append((c.labels[0] if c.labels else GOOD,))
    return "single_label", sorted({p[0] for p in per}), per


def _check_out(out: Path, source: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(
            f"output folder {out} already exists and is not empty; remove it or choose another"
        )
    if source.is_dir() and out.resolve().is_relative_to(source.resolve()):
        raise DataError(f"output folder {out} must not lie inside the source folder {source}")


def _read_checked(c: Candidate) -> tuple[bytes, ImageInfo]:
    try:
        data = c.file.read_bytes()
    except OSError as exc:
        raise BadImage("unreadable", str(exc)) from None
    return data, check_image(data)


def import_batch(
    source: Path, out: Path, task: str = "auto", seed: int = 0, good_label: str | None = None
) -> ImportResult:
    """Check, copy and register every image of a labelled batch; see README 'Data sets'.

    The label that means "no defect" (`good_label`, else one of GOOD_ALIASES) is stored as the
    class GOOD, its original spelling in the header, so the any-defect decision, false-hold rate
    and verdict know which photos are good."""
    if task not in TASKS:
        raise DataError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    source, out = Path(source), Path(out)
    kind, candidates, skipped = scan_source(source)
    good = find_good_label(candidates, good_label)
    if good is not None:
        candidates = _as_good(candidates, good)
    new_task, classes, labels = resolve_labels(candidates, task)
    _check_out(out, source)
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)

    kept: dict[str, tuple[Candidate, tuple[str, ...], ImageInfo]] = {}
    conflicted: set[str] = set()
    for c, labs in zip(tqdm(candidates, desc="import", unit="file"), labels, strict=True):
        try:
            data, info = _read_checked(c)
        except BadImage as bad:
            skipped.append(Skipped(c.rel, bad.reason, bad.detail))
            continue
        sha = hashlib.sha256(data).hexdigest()
        if sha in kept:
            first, first_labels, _ = kept[sha]
            same = first_labels == labs
            reason = "duplicate" if same else "conflicting_duplicate"
            skipped.append(Skipped(c.rel, reason, f"same image as {first.rel}"))
            if not same:
                conflicted.add(sha)
            continue
        target = images / f"{sha}{info.extension}"
        if not target.exists():
            target.write_bytes(data)
        kept[sha] = (c, labs, info)

    # Identical photos labelled differently: no way to tell which label is right, keep neither.
    for sha in conflicted:
        c, _, info = kept.pop(sha)
        skipped.append(
            Skipped(c.rel, "conflicting_duplicate", "identical image labelled differently")
        )
        (images / f"{sha}{info.extension}").unlink()

    records = [_record(sha, c, labs, info) for sha, (c, labs, info) in kept.items()]
    recipe = {
        "command": "kito data import",
        "source": str(source.resolve()),
        "source_kind": kind,
        "task": task,
        "seed": seed,
        "good_label": good_label,
    }
    _write_report(out, source, kind, len(records), skipped)
    if not records:
        raise DataError(
            f"no importable images in {source} ({len(skipped)} files skipped; "
            f"see {out / REPORT_NAME})"
        )
    header = Header(
        name=out.resolve().name, task=new_task, classes=classes, recipe=recipe,
        good_label=good if new_task == "single_label" and good is not None else None,
    )  # fmt: skip
    manifest = Manifest(header=header, records=assign_splits(records, seed=seed))
    written = manifest.write(out / "manifest.jsonl")
    return ImportResult(written, out, source, kind, skipped)


def _record(sha: str, c: Candidate, labels: tuple[str, ...], info: ImageInfo) -> Record:
    meta: dict[str, Any] = {"original": c.rel, "format": info.format, "mode": info.mode}
    if info.exif_orientation != 1:
        meta["exif_orientation"] = info.exif_orientation
    return Record(
        id=sha[:20],
        image=f"images/{sha}{info.extension}",
        sha256=sha,
        width=info.width,
        height=info.height,
        design_id=c.design,
        # Without a piece id, the photo's own hash groups exact copies into one split.
        piece_id=c.piece_id or sha,
        artisan_id=c.artisan_id,
        labels=list(labels),
        source="imported",
        meta=meta,
    )


def _write_report(
    out: Path, source: Path, kind: str, imported: int, skipped: list[Skipped]
) -> None:
    report = {
        "source": str(source),
        "source_kind": kind,
        "imported": imported,
        "skipped_count": len(skipped),
        "skipped_by_reason": dict(sorted(Counter(s.reason for s in skipped).items())),
        "skipped": [{"file": s.file, "reason": s.reason, "detail": s.detail} for s in skipped],
    }
    (out / REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
