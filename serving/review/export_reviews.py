"""`kito data export-reviews`: QC decisions as a labelled data set that training reads.

Every decided review item gives one record per photo of its inspection, labelled with the
defects of the decision in force (a correction replaces what it corrects), in the project's one
manifest format (qc_model.manifest) with source "reviewed". Photos are copied from the object
store by sha256; HEIC photos, which training's OpenCV decoder cannot read, are converted to PNG
(the record keeps the original's hash in `meta`). The version is the manifest's content hash,
so exporting the same decisions twice gives the same version.
"""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from qc_model.errors import DataError
from qc_model.manifest import Header, Manifest, Record
from qc_model.splits import assign_splits
from qc_model.taxonomy import DEFECT_LABELS
from serving.db.models import Photo, ReviewDecision, ReviewItem
from serving.store.storage import ObjectStore

log = logging.getLogger("kito.serving")
_EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp"}
_SWAPS_SIDES = {5, 6, 7, 8}  # EXIF orientations that turn the image by 90 degrees


@dataclass
class ExportResult:
    manifest: Manifest
    out: Path
    decisions: int
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        m = self.manifest
        text = (
            f"wrote {len(m.records)} photos from {self.decisions} QC decisions to {self.out} "
            f"(version {m.header.version})"
        )
        return text + (f"; skipped {len(self.skipped)}" if self.skipped else "")


def export_reviews(
    session: Session,
    store: ObjectStore,
    out: Path,
    *,
    since: datetime | None = None,
    seed: int = 0,
) -> ExportResult:
    """Write `out/manifest.jsonl` and `out/images/`; DataError if there is nothing to export."""
    current = (
        select(ReviewDecision.review_id, func.max(ReviewDecision.seq).label("seq"))
        .group_by(ReviewDecision.review_id)
        .subquery()
    )
    stmt = (
        select(ReviewItem, ReviewDecision)
        .join(ReviewDecision, ReviewDecision.review_id == ReviewItem.id)
        .join(
            current,
            (current.c.review_id == ReviewDecision.review_id)
            & (current.c.seq == ReviewDecision.seq),
        )
        .order_by(ReviewDecision.decided_at, ReviewItem.id)
    )
    if since is not None:
        stmt = stmt.where(ReviewDecision.decided_at >= since)
    rows = session.execute(stmt).all()
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    records: list[Record] = []
    skipped: list[str] = []
    for item, decision in rows:
        if decision.decision == "reject" and not decision.labels:
            # Rejected, but for no defect QC named: no label to learn from.
            skipped.append(f"review {item.id}: rejected without a defect label")
            continue
        for photo in item.inspection.photos:
            try:
                records.append(_record(store, images, item, decision, photo))
            except (KeyError, OSError, ValueError) as exc:
                skipped.append(f"review {item.id} photo {photo.position}: {exc!r}")
    if not records:
        raise DataError(
            "no decided reviews to export"
            + (f" since {since.isoformat()}" if since else "")
            + (f" ({len(skipped)} skipped: {skipped[0]})" if skipped else "")
        )
    header = Header(
        name=out.resolve().name,
        task="multilabel",
        classes=list(DEFECT_LABELS),
        recipe={
            "command": "kito data export-reviews",
            "since": since.isoformat() if since else None,
            "seed": seed,
        },
    )
    manifest = Manifest(header=header, records=assign_splits(records, seed=seed))
    written = manifest.write(out / "manifest.jsonl")
    for reason in skipped:
        log.warning("export-reviews skipped %s", reason)
    return ExportResult(written, out, len(rows), skipped)


def _record(
    store: ObjectStore, images: Path, item: ReviewItem, decision: ReviewDecision, photo: Photo
) -> Record:
    data = store.get(photo.sha256)
    meta: dict[str, Any] = {
        "review_id": item.id,
        "reason": item.reason,
        "inspection_id": item.inspection_id,
        "model_verdict": item.model_verdict,
        "model_version": item.inspection.model_version,
        "model_labels": list((item.inspection.result.get("verdict") or {}).get("defects") or []),
        "decision": decision.decision,
        "decision_id": decision.id,
        "corrected": decision.corrects is not None,
        "decided_by": decision.decided_by,
        "decided_at": decision.decided_at.isoformat(),
        "order_id": item.order_id,
        "piece_id": item.piece_id,
        "position": photo.position,
        "media_type": photo.media_type,
    }
    if photo.media_type in _EXTENSIONS:
        sha, ext = photo.sha256, _EXTENSIONS[photo.media_type]
    else:
        data = _to_png(data)
        sha, ext = _sha256(data), ".png"
        meta["source_sha256"] = photo.sha256
    target = images / f"{sha}{ext}"
    if not target.is_file():
        target.write_bytes(data)
    width, height = _oriented_size(data)
    labels = set(decision.labels)
    return Record(
        id=f"{item.id}-{photo.position}",
        image=f"images/{sha}{ext}",
        sha256=sha,
        width=width,
        height=height,
        design_id=item.design_id,
        # Piece ids are the artisan's own names ("P1"): qualified by order (or artisan) so
        # that splits, which group by piece, do not merge different pieces.
        piece_id=f"{item.order_id or f'artisan-{item.artisan_id}'}/{item.piece_id}",
        artisan_id=str(item.artisan_id),
        labels=[c for c in DEFECT_LABELS if c in labels],
        source="reviewed",
        meta=meta,
    )


def _oriented_size(data: bytes) -> tuple[int, int]:
    """(width, height) as OpenCV (training's decoder) will see it: EXIF orientation applied."""
    with Image.open(io.BytesIO(data)) as im:
        w, h = im.size
        orientation = im.getexif().get(0x0112, 1)
    return (h, w) if orientation in _SWAPS_SIDES else (w, h)


def _to_png(data: bytes) -> bytes:
    import pillow_heif
    from PIL import ImageOps

    pillow_heif.register_heif_opener()
    with Image.open(io.BytesIO(data)) as im:
        rgb = ImageOps.exif_transpose(im).convert("RGB")
    buf = io.BytesIO()
    rgb.save(buf, format="PNG")
    return buf.getvalue()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def count_reviewed_since(session: Session, since: datetime | None) -> int:
    """Review items given a decision (first or corrected) at or after `since`: how many new
    labels a retraining would learn from."""
    stmt = select(func.count(func.distinct(ReviewDecision.review_id)))
    if since is not None:
        stmt = stmt.where(ReviewDecision.decided_at >= since)
    return int(session.scalar(stmt) or 0)
