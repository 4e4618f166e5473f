"""The QC review queue: which inspections a person looks at, in what order, and their decisions.

Priority of an item, highest first:

    priority = 2 * uncertainty + value + age_hours / 24

- uncertainty in [0, 1]: how close the model came to changing its mind. For each defect class,
  d = the distance from the piece's score to the nearer end of the class's review band
  [t_low, t_high] (stored with the inspection); uncertainty = 1 - min(1, 4 * min d), so a score
  on a threshold gives 1 and every score 0.25 or more away from both ends gives 0. An
  inspection without scores (a spec-check-only verdict, a stand-in model) counts 0.5.
- value in [0, 1]: log10(1 + order total in major units) / 5, capped at 1 (100 000 KES -> 1);
  0 for an inspection outside an order. Money waiting on the decision comes first.
- age: one point per day waiting, so nothing starves behind fresher uncertain items.

Only the age term changes over time and it grows at the same rate for every item, so the queue
is sorted by a stored key, `priority_base - created_at / 1 day`, which orders items exactly as
their current priority does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from serving.core.audit import record
from serving.core.errors import ApiError
from serving.db.models import Inspection, ReviewDecision, ReviewItem, User

DAY_S = 86400.0
_NO_SCORES = 0.5


def uncertainty(result: Mapping[str, Any]) -> float:
    verdict = result.get("verdict") or {}
    scores = verdict.get("scores") or {}
    bands = (result.get("thresholds") or {}).get("bands") or {}
    distances = [
        min(abs(float(s) - float(bands[c][0])), abs(float(s) - float(bands[c][1])))
        for c, s in scores.items()
        if c in bands and isinstance(s, int | float)
    ]
    if not distances:
        return _NO_SCORES
    return 1.0 - min(1.0, 4.0 * min(distances))


def value(order_total_minor: int | None) -> float:
    if not order_total_minor:
        return 0.0
    return min(1.0, math.log10(1.0 + order_total_minor / 100.0) / 5.0)


def priority_base(result: Mapping[str, Any], order_total_minor: int | None) -> float:
    return 2.0 * uncertainty(result) + value(order_total_minor)


def sort_key(base: float, created_at: datetime) -> float:
    return base - created_at.timestamp() / DAY_S


def current_priority(item: ReviewItem, now: datetime | None = None) -> float:
    """The priority now; a decided item's age stops at its decision."""
    end = item.decided_at or now or datetime.now(UTC)
    age_days = max(0.0, (end - item.created_at).total_seconds()) / DAY_S
    return round(item.priority_base + age_days, 4)


def model_labels(result: Mapping[str, Any]) -> list[str]:
    """The defects the model (or a spec check) flagged."""
    return list((result.get("verdict") or {}).get("defects") or [])


def enqueue(
    session: Session,
    inspection: Inspection,
    reason: str,
    *,
    order_total_minor: int | None,
) -> ReviewItem:
    now = datetime.now(UTC)
    base = priority_base(inspection.result or {}, order_total_minor)
    item = ReviewItem(
        inspection_id=inspection.id,
        reason=reason,
        status="open",
        priority_base=base,
        sort_key=sort_key(base, now),
        order_id=inspection.order_id,
        piece_id=inspection.piece_id,
        design_id=inspection.design_id,
        artisan_id=inspection.owner_id,
        model_verdict=inspection.verdict or "",
        created_at=now,
    )
    session.add(item)
    session.flush()
    record(
        session,
        actor=None,
        action="review.enqueue",
        entity_type="review",
        entity_id=item.id,
        inspection_id=inspection.id,
        reason=reason,
        priority=round(base, 4),
    )
    return item


# A newer judged inspection of the same order piece replaces that piece's open fail and review
# items: the piece's state follows its latest judged inspection (serving.orders.pieces), so deciding
# an older one would change nothing. Audit samples stay: they measure the model, not the piece.
REPLACED = "replaced"


def replace_open_items(session: Session, inspection: Inspection) -> list[str]:
    """Close the open fail/review items of `inspection`'s order piece as replaced by it; the
    ids closed. Called under the order's row lock, before the new inspection's own item."""
    if inspection.order_id is None:
        return []
    ids = list(
        session.scalars(
            select(ReviewItem.id).where(
                ReviewItem.order_id == inspection.order_id,
                ReviewItem.piece_id == inspection.piece_id,
                ReviewItem.status == "open",
                ReviewItem.reason.in_(("fail", "review")),
                ReviewItem.inspection_id != inspection.id,
            )
        ).all()
    )
    if not ids:
        return []
    session.execute(
        update(ReviewItem)
        .where(ReviewItem.id.in_(ids), ReviewItem.status == "open")
        .values(status=REPLACED, decided_at=datetime.now(UTC))
        .execution_options(synchronize_session="fetch")
    )
    for item_id in ids:
        record(
            session,
            actor=None,
            action="review.replace",
            entity_type="review",
            entity_id=item_id,
            replaced_by=inspection.id,
        )
    return ids


def add_decision(
    session: Session,
    item: ReviewItem,
    *,
    actor: User,
    decision: str,
    labels: list[str],
    note: str | None,
    correction: bool,
    review_ms: int | None = None,
) -> ReviewDecision:
    """Add a decision (or a correction of the current one) to `item`, flushed, not committed.

    Two staff deciding at once: both insert seq n; the unique (review_id, seq) lets one
    through and the other gets 409, whichever process or replica each runs in.
    """
    current = session.scalars(
        select(ReviewDecision)
        .where(ReviewDecision.review_id == item.id)
        .order_by(ReviewDecision.seq.desc())
        .limit(1)
    ).first()
    if not correction and current is not None:
        raise _already_decided(current)
    if correction and current is None:
        raise ApiError(409, "not_decided", "nothing to correct: this item has no decision yet")
    if item.status == REPLACED:
        raise _replaced()
    now = datetime.now(UTC)
    row = ReviewDecision(
        review_id=item.id,
        seq=0 if current is None else current.seq + 1,
        decision=decision,
        labels=labels,
        note=note,
        decided_by=actor.id,
        decided_at=now,
        corrects=current.id if correction and current is not None else None,
    )
    session.add(row)
    try:
        session.flush()
        if not correction:
            # Conditional, so a stale reader cannot reopen or re-date a decided item.
            done = session.execute(
                update(ReviewItem)
                .where(ReviewItem.id == item.id, ReviewItem.status == "open")
                .values(status="decided", decided_at=now)
            )
            if done.rowcount == 0:  # type: ignore[attr-defined]
                # Not decided (the unique seq would have refused this decision): a newer
                # inspection of the piece replaced it after it was read.
                session.rollback()
                raise _replaced()
        record(
            session,
            actor=actor,
            action="review.correct" if correction else "review.decide",
            entity_type="review",
            entity_id=item.id,
            decision_id=row.id,
            decision=decision,
            labels=labels,
            corrects=row.corrects,
            review_ms=review_ms,
        )
        session.flush()
    except IntegrityError:
        session.rollback()
        raise ApiError(
            409,
            "already_decided",
            "someone else decided this item first"
            if not correction
            else "someone else corrected this decision first; reload and correct the new one",
        ) from None
    session.refresh(item)
    return row


def _replaced() -> ApiError:
    return ApiError(
        409,
        REPLACED,
        "a newer inspection of this piece replaced this item; decide the newer one if it is "
        "in the queue",
    )


def _already_decided(current: ReviewDecision) -> ApiError:
    return ApiError(
        409,
        "already_decided",
        f"already decided ({current.decision}) by user {current.decided_by}; "
        "post a correction to change it",
    )


def queue_metrics(session: Session, now: datetime | None = None) -> dict[str, Any]:
    """Size, age, throughput and how often the model and QC agree (current decisions).

    Agreement counts decided items whose model verdict took a side: pass agrees with approve,
    fail with reject; `review` verdicts abstained and are left out. Audit samples (passes)
    rejected by QC are escapes: defects the model let through.
    """
    now = now or datetime.now(UTC)
    open_count = session.scalar(
        select(func.count()).select_from(ReviewItem).where(ReviewItem.status == "open")
    )
    oldest = session.scalar(
        select(func.min(ReviewItem.created_at)).where(ReviewItem.status == "open")
    )
    if oldest is not None and oldest.tzinfo is None:  # SQLite's aggregate comes back naive
        oldest = oldest.replace(tzinfo=UTC)
    last_hour = session.scalar(
        select(func.count())
        .select_from(ReviewDecision)
        .where(ReviewDecision.decided_at >= now - timedelta(hours=1))
    )
    latest_seq = (
        select(ReviewDecision.review_id, func.max(ReviewDecision.seq).label("seq"))
        .group_by(ReviewDecision.review_id)
        .subquery()
    )
    pairs = session.execute(
        select(ReviewItem.reason, ReviewItem.model_verdict, ReviewDecision.decision)
        .join(ReviewDecision, ReviewDecision.review_id == ReviewItem.id)
        .join(
            latest_seq,
            (latest_seq.c.review_id == ReviewDecision.review_id)
            & (latest_seq.c.seq == ReviewDecision.seq),
        )
    ).all()
    sided = [(v, d) for _, v, d in pairs if v in ("pass", "fail")]
    agreed = sum(1 for v, d in sided if (v, d) in {("pass", "approve"), ("fail", "reject")})
    audits = [d for r, _, d in pairs if r == "audit"]
    escapes = sum(1 for d in audits if d == "reject")
    return {
        "open": open_count or 0,
        "oldest_open_age_s": round((now - oldest).total_seconds(), 1) if oldest else None,
        "decisions_last_hour": last_hour or 0,
        "agreement": {
            "decided": len(sided),
            "agreed": agreed,
            "rate": round(agreed / len(sided), 4) if sided else None,
        },
        "audit": {
            "decided": len(audits),
            "escapes": escapes,
            "escape_rate": round(escapes / len(audits), 4) if audits else None,
        },
    }
