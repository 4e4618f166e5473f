"""What an inspection or a QC decision changes, inside the transaction that records it: the
review queue, the piece's state and, when the order's last piece is accepted, its payout.

Everything that decides about an order (an inspection of one of its pieces, a QC decision, a
release) takes the order's lock first and reads the piece states after it: a row lock on
PostgreSQL (SELECT ... FOR NO KEY UPDATE), the database's write lock on SQLite (a no-op UPDATE
of the order opens the write transaction; SQLite has one writer at a time). So two pieces
accepted at the same moment cannot each miss the other, a release cannot pay on piece states a
rejection is changing, and an upload cannot land on an order a payout has just closed.
"""

from __future__ import annotations

import random
import threading

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from serving.core.audit import record
from serving.core.settings import Settings
from serving.db.models import Inspection, Order, OrderPiece, ReviewItem, User
from serving.inspection.design_check import attach_example
from serving.inspection.fingerprints import REASON as PHOTO_REUSED
from serving.inspection.fingerprints import check_reused
from serving.orders.order_lock import lock_order
from serving.orders.payouts import existing_payout, pay_if_complete
from serving.orders.pieces import JUDGED, refresh_piece
from serving.review.review_queue import enqueue, replace_open_items


class Workflow:
    def __init__(
        self, audit_sample_rate: float, seed: int | None = None, *, auto_payout: bool = True
    ) -> None:
        self.audit_sample_rate = audit_sample_rate
        self.auto_payout = auto_payout
        self._rng = random.Random(seed)
        self._lock = threading.Lock()  # one draw at a time keeps a seeded sequence reproducible

    @classmethod
    def from_settings(cls, settings: Settings) -> Workflow:
        return cls(
            settings.audit_sample_rate, settings.audit_seed, auto_payout=settings.auto_payout
        )

    def sample_audit(self) -> bool:
        with self._lock:
            return self._rng.random() < self.audit_sample_rate

    def after_inspection(self, session: Session, row: Inspection, owner: User) -> None:
        """`row` is flushed, not committed; the caller commits."""
        record(
            session,
            actor=owner,
            action="inspection.create",
            entity_type="inspection",
            entity_id=row.id,
            order_id=row.order_id,
            piece_id=row.piece_id,
            design_id=row.design_id,
            status=row.status,
            verdict=row.verdict,
            model_version=row.model_version,
        )
        # The intake locked the order already (and checked it is not paid) before the insert.
        order = lock_order(session, row.order_id) if row.order_id else None
        # A photo already sent for another piece holds this one for QC (serving.fingerprints).
        reused = check_reused(session, row) if row.status == "inspected" else []
        attach_example(session, row)  # a piece that looks like another design: an example of it
        if order is not None and row.status == "inspected" and row.verdict in JUDGED:
            replace_open_items(session, row)
        reason = None
        if reused and row.verdict in JUDGED:
            reason = PHOTO_REUSED
        elif row.verdict in ("fail", "review"):
            reason = row.verdict
        elif row.verdict == "pass" and self.sample_audit():
            reason = "audit"
        if reason is not None:
            total = sum(p.payout_minor for p in order.pieces) if order is not None else None
            enqueue(session, row, reason, order_total_minor=total)
        if order is not None:
            settle(session, order, row.piece_id, actor=owner, pay=self.auto_payout)

    def before_decision(self, session: Session, item: ReviewItem) -> None:
        """Lock the item's order before the decision is written: the decision, the piece state
        and a payout are then decided in one order, never interleaved with a release."""
        if item.order_id is not None:
            lock_order(session, item.order_id)
            session.refresh(item)  # its status as of the lock (a newer inspection replaces it)

    def after_decision(self, session: Session, item: ReviewItem, actor: User) -> None:
        if item.order_id is not None:
            order = lock_order(session, item.order_id)
            settle(session, order, item.piece_id, actor=actor, pay=self.auto_payout)


def settle(session: Session, order: Order, piece_id: str, *, actor: User, pay: bool) -> None:
    """Refresh one piece's state and, if `pay`, pay the order when that completed it. A paid
    order is final: its pieces keep the states they were paid in."""
    if existing_payout(session, order.id) is not None:
        return
    piece = session.scalars(
        select(OrderPiece).where(OrderPiece.order_id == order.id, OrderPiece.piece_id == piece_id)
    ).one()
    before = piece.state
    if refresh_piece(session, piece):
        record(
            session,
            actor=actor,
            action="piece.state",
            entity_type="order",
            entity_id=order.id,
            piece_id=piece_id,
            before=before,
            after=piece.state,
            reason=piece.reason,
        )
    session.flush()
    if not pay:
        return
    # Cheap check on the stored states first; pay_if_complete recomputes all from the source.
    waiting = session.scalar(
        select(func.count())
        .select_from(OrderPiece)
        .where(OrderPiece.order_id == order.id, OrderPiece.state != "accepted")
    )
    if not waiting:
        pay_if_complete(session, order)
