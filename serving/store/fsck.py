"""`kito fsck`: check that the database and the photo store agree, and that the records the
service writes together were written together.

Found problems, each one line:
- missing_object: a photo row whose file is not in the store;
- bad_checksum: a stored file whose bytes do not hash to its key (disk corruption);
- orphan_object: a stored file no photo row names (an upload that failed after storing its
  photos and was never retried; harmless, but it should not happen silently; the service's
  sweep and `kito fsck --repair` delete those older than their minimum age, serving.store.orphans);
- interrupted_write: a temporary file left by a write that was killed before its rename (the
  service deletes those of dead writers when it starts);
- no_photos, photo_gap: an inspection without photos, or with positions missing;
- no_verdict, stray_verdict: status `inspected` without a verdict, or a verdict without it;
- not_queued: a fail or review verdict that never reached the review queue;
- payout_without_outbox, payout_amount: a payout nobody would deliver, or whose amount is not
  the sum of its order's pieces.

Files younger than `min_age_s` are not called orphans or interrupted writes: on a running
service they belong to uploads in flight (photos are stored before their row is committed).
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from serving.db.models import (
    Inspection,
    Order,
    OrderPiece,
    Payout,
    PayoutOutbox,
    Photo,
    ReviewItem,
)
from serving.store.storage import LocalObjectStore, writer_alive, writer_pid

if TYPE_CHECKING:
    from serving.store.storage_s3 import S3ObjectStore

    Store = LocalObjectStore | S3ObjectStore

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Finding:
    kind: str
    subject: str
    detail: str

    def line(self) -> str:
        return f"{self.kind:22} {self.subject}  {self.detail}"


@dataclass
class FsckReport:
    counts: dict[str, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)  # deleted by `kito fsck --repair`

    @property
    def ok(self) -> bool:
        return not self.findings

    def add(self, kind: str, subject: str, detail: str) -> None:
        self.findings.append(Finding(kind, subject, detail))

    def summary(self) -> str:
        checked = ", ".join(f"{n} {what}" for what, n in self.counts.items())
        if self.ok:
            return f"fsck: clean ({checked})"
        by_kind: dict[str, int] = defaultdict(int)
        for f in self.findings:
            by_kind[f.kind] += 1
        problems = ", ".join(f"{n} {kind}" for kind, n in sorted(by_kind.items()))
        return f"fsck: {len(self.findings)} problems: {problems} ({checked})"

    def lines(self) -> list[str]:
        fixed = [f"{'deleted':22} {what}" for what in self.repaired]
        if self.repaired:
            fixed.append(f"fsck --repair: deleted {len(self.repaired)} orphan or temporary files")
        return fixed + [f.line() for f in self.findings] + [self.summary()]


def fsck(
    session: Session,
    store: Store,
    *,
    min_age_s: float = 0.0,
    verify: bool = True,
    now: float | None = None,
) -> FsckReport:
    """Check everything; `verify` re-hashes every stored file (reads all photo bytes)."""
    report = FsckReport()
    now = time.time() if now is None else now
    referenced = _check_photos(session, store, report, verify=verify)
    _check_store(store, referenced, report, min_age_s=min_age_s, now=now)
    _check_inspections(session, report)
    _check_payouts(session, report)
    return report


def _check_photos(session: Session, store: Store, report: FsckReport, *, verify: bool) -> set[str]:
    rows = session.execute(
        select(Photo.sha256, Photo.inspection_id, Photo.position).execution_options(yield_per=1000)
    )
    users: dict[str, list[str]] = defaultdict(list)
    n = 0
    for sha, inspection_id, position in rows:
        users[sha].append(f"{inspection_id}/{position}")
        n += 1
    report.counts["photo rows"] = n
    for sha, named_by in users.items():
        if not store.exists(sha):
            report.add("missing_object", sha, f"named by {', '.join(named_by[:3])}")
        elif verify and _digest(store, sha) != sha:
            where = store.path(sha) if isinstance(store, LocalObjectStore) else store
            report.add("bad_checksum", sha, f"bytes do not hash to the key ({where})")
    return set(users)


def _digest(store: Store, key: str) -> str | None:
    if isinstance(store, LocalObjectStore):
        return _sha256(store.path(key))
    try:
        return store.digest(key)
    except KeyError:  # deleted since `exists` looked
        return None


def _check_store(
    store: Store,
    referenced: set[str],
    report: FsckReport,
    *,
    min_age_s: float,
    now: float,
) -> None:
    n = 0
    if not isinstance(store, LocalObjectStore):
        # A bucket: puts are atomic, so there are only objects, never interrupted writes.
        for name, modified in store.list_keys():
            n += 1
            if now - modified >= min_age_s and name not in referenced:
                report.add("orphan_object", name, "no photo row names it")
        report.counts["stored files"] = n
        return
    if not store.root.is_dir():
        report.counts["stored files"] = 0
        return
    for key, path in store.walk():
        n += 1
        if now - path.stat().st_mtime < min_age_s:
            continue  # may belong to an upload in flight
        if key is None:
            pid = writer_pid(path)
            if pid is not None and writer_alive(pid):
                continue  # its writer is still running: a write in flight
            report.add("interrupted_write", str(path), "not an object; safe to delete")
        elif key not in referenced:
            report.add("orphan_object", key, "no photo row names it")
    report.counts["stored files"] = n


def _check_inspections(session: Session, report: FsckReport) -> None:
    positions: dict[str, list[int]] = defaultdict(list)
    for inspection_id, position in session.execute(
        select(Photo.inspection_id, Photo.position)
    ).all():
        positions[inspection_id].append(position)
    queued = set(session.scalars(select(ReviewItem.inspection_id)).all())
    n = 0
    for id_, status, verdict in session.execute(
        select(Inspection.id, Inspection.status, Inspection.verdict).execution_options(
            yield_per=1000
        )
    ):
        n += 1
        have = sorted(positions.get(id_, []))
        if not have:
            report.add("no_photos", id_, "inspection has no photo rows")
        elif have != list(range(len(have))):
            report.add("photo_gap", id_, f"photo positions {have}")
        if status == "inspected" and verdict is None:
            report.add("no_verdict", id_, "status inspected without a verdict")
        elif status != "inspected" and verdict is not None:
            report.add("stray_verdict", id_, f"verdict {verdict} with status {status}")
        if verdict in ("fail", "review") and id_ not in queued:
            report.add("not_queued", id_, f"verdict {verdict} but no review item")
    report.counts["inspections"] = n


def _check_payouts(session: Session, report: FsckReport) -> None:
    boxed = set(session.scalars(select(PayoutOutbox.payout_id)).all())
    totals = dict(
        session.execute(
            select(OrderPiece.order_id, func.sum(OrderPiece.payout_minor)).group_by(
                OrderPiece.order_id
            )
        ).all()
    )
    n = 0
    for payout_id, order_id, amount in session.execute(
        select(Payout.id, Payout.order_id, Payout.amount_minor).join(Order)
    ):
        n += 1
        if payout_id not in boxed:
            report.add("payout_without_outbox", payout_id, f"order {order_id}: never delivered")
        if totals.get(order_id) != amount:
            report.add(
                "payout_amount",
                payout_id,
                f"order {order_id}: paid {amount}, pieces total {totals.get(order_id)}",
            )
    report.counts["payouts"] = n


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
