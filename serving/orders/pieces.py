"""Piece state, derived from the database: a piece of an order is accepted, rejected or pending.

The deciding inspection of a piece is its latest inspection with a judgement (pass, fail or
review); retakes and uploads not yet inspected do not count against the artisan. Then:

- QC's current decision on the deciding inspection (a correction replaces the decision it
  corrects): approve -> accepted, reject -> rejected (the artisan may submit a new inspection);
- no decision: pass -> accepted; fail or review -> pending, waiting for QC review;
- no deciding inspection: pending, with the reason (nothing submitted, retake needed, ...).

`piece_status` reads the source rows (inspections, review items, decisions) inside the caller's
transaction; `refresh_piece` copies the result onto the `order_pieces` row for listing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from serving.db.models import Inspection, OrderPiece, ReviewDecision, ReviewItem

JUDGED = ("pass", "fail", "review")
_REASON_MAX = 600


@dataclass(frozen=True)
class PieceStatus:
    state: str  # pending | accepted | rejected
    reason: str | None  # why it is held, for the artisan; None when accepted
    latest_inspection_id: str | None


def piece_status(session: Session, order_id: str, piece_id: str) -> PieceStatus:
    rows = session.scalars(
        select(Inspection)
        .where(Inspection.order_id == order_id, Inspection.piece_id == piece_id)
        .order_by(Inspection.created_at.desc())
    ).all()
    if not rows:
        return PieceStatus("pending", "no photo submitted yet", None)
    latest = rows[0]
    deciding = next((r for r in rows if r.status == "inspected" and r.verdict in JUDGED), None)
    if deciding is None:
        return PieceStatus("pending", _unjudged_reason(latest), latest.id)
    decision = current_decision(session, deciding.id)
    if decision is not None and decision.decision == "reject":
        return PieceStatus("rejected", _clip(_rejection(decision)), latest.id)
    if (decision is not None and decision.decision == "approve") or deciding.verdict == "pass":
        return PieceStatus("accepted", None, latest.id)
    return PieceStatus("pending", "waiting for QC review", latest.id)


def current_decision(session: Session, inspection_id: str) -> ReviewDecision | None:
    """The decision in force for an inspection: the last of its chain of corrections."""
    return session.scalars(
        select(ReviewDecision)
        .join(ReviewItem, ReviewDecision.review_id == ReviewItem.id)
        .where(ReviewItem.inspection_id == inspection_id)
        .order_by(ReviewDecision.seq.desc())
        .limit(1)
    ).first()


def refresh_piece(session: Session, piece: OrderPiece) -> bool:
    """Recompute `piece` from the database and store the result; True if its state changed."""
    status = piece_status(session, piece.order_id, piece.piece_id)
    changed = piece.state != status.state
    if changed or (piece.reason, piece.latest_inspection_id) != (
        status.reason,
        status.latest_inspection_id,
    ):
        piece.state = status.state
        piece.reason = status.reason
        piece.latest_inspection_id = status.latest_inspection_id
        piece.updated_at = datetime.now(UTC)
    return changed


def _unjudged_reason(latest: Inspection) -> str:
    if latest.status == "received":
        return "photos received, waiting for inspection"
    if latest.status == "failed":
        return "the inspection could not run; please submit the photos again"
    return _clip(f"retake needed: {retake_message(latest.result)}")


def retake_message(result: dict[str, Any]) -> str:
    """The photo gate's instruction to the artisan, as stored with the inspection."""
    reasons = ((result or {}).get("verdict") or {}).get("reasons") or []
    texts = [r["text"] for r in reasons if isinstance(r, dict) and r.get("text")]
    return "; ".join(dict.fromkeys(texts)) or "take the photos again on the mat, in good light"


def _rejection(decision: ReviewDecision) -> str:
    if decision.note:
        return f"rejected by QC: {decision.note}"
    if decision.labels:
        return f"rejected by QC: {', '.join(decision.labels)}"
    return "rejected by QC"


def _clip(text: str) -> str:
    return text if len(text) <= _REASON_MAX else text[: _REASON_MAX - 3] + "..."
