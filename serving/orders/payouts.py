"""The payout gate: one payout per order, created when every piece is accepted.

Exactly once, by the database: `payouts.order_id` is UNIQUE and the payout's outbox row (what
the dispatcher delivers, serving.orders.outbox) and audit entry are inserted in one transaction.
Whoever inserts second (a concurrent release, a retry, an automatic payout racing a release)
gets an IntegrityError and answers with the row that won; a crash before the commit leaves
nothing, a crash after it leaves the payout and its outbox row together.

A release decides under the order's lock (serving.orders.order_lock), like inspections and
QC decisions: the piece states it pays on are read after the lock, so a rejection committed
before it is seen and one written after it finds the order paid (and final). Each transaction
takes one order's lock and nothing else first, so they cannot deadlock.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from serving.core.audit import record
from serving.core.errors import ApiError
from serving.db.models import Order, OrderPiece, Payout, PayoutOutbox, User
from serving.orders.order_lock import lock_order
from serving.orders.pieces import PieceStatus, piece_status

log = logging.getLogger("kito.serving")


def existing_payout(session: Session, order_id: str) -> Payout | None:
    return session.scalars(
        select(Payout).where(Payout.order_id == order_id).execution_options(populate_existing=True)
    ).first()


def held_pieces(session: Session, order: Order) -> list[tuple[OrderPiece, PieceStatus]]:
    """Pieces not accepted, each with its status computed now from the source rows."""
    pieces = session.scalars(
        select(OrderPiece)
        .where(OrderPiece.order_id == order.id)
        .order_by(OrderPiece.position)
        .execution_options(populate_existing=True)
    ).all()
    statuses = [(p, piece_status(session, order.id, p.piece_id)) for p in pieces]
    return [(p, s) for p, s in statuses if s.state != "accepted"]


def release(session: Session, order: Order, *, actor: User) -> Payout:
    """The order's payout, creating it if every piece is accepted; idempotent.

    Raises ApiError 409 `not_ready` naming the pieces that hold it. Commits (or rolls back),
    so the caller reads afterwards the state this release decided on.
    """
    order = lock_order(session, order.id)
    payout = existing_payout(session, order.id)
    if payout is not None:
        session.commit()  # the lock is not held while the answer is built
        return payout
    held = held_pieces(session, order)
    if held:
        session.rollback()
        names = ", ".join(f"{p.piece_id} ({s.state}: {s.reason})" for p, s in held[:5])
        more = f" and {len(held) - 5} more" if len(held) > 5 else ""
        raise ApiError(409, "not_ready", f"not every piece is accepted: {names}{more}")
    try:
        payout = _insert(session, order, actor_id=actor.id)
        session.commit()
    except IntegrityError:
        # Another release (or the automatic payout) committed first: answer with its payout.
        session.rollback()
        winner = existing_payout(session, order.id)
        if winner is None:
            raise
        log.info("order %s: a concurrent release paid first (payout %s)", order.id, winner.id)
        return winner
    return payout


def pay_if_complete(session: Session, order: Order) -> Payout | None:
    """Inside a larger transaction (an inspection or a decision) holding the order's row lock:
    create the payout if every piece is accepted, recomputed from the source rows. A payout
    inserted concurrently by a release is not an error: the savepoint is undone, the rest of
    the transaction kept."""
    if existing_payout(session, order.id) is not None or held_pieces(session, order):
        return None
    try:
        with session.begin_nested():
            return _insert(session, order, actor_id=None)
    except IntegrityError:
        return existing_payout(session, order.id)


def _insert(session: Session, order: Order, *, actor_id: int | None) -> Payout:
    amount = sum(p.payout_minor for p in order.pieces)
    payout = Payout(
        order_id=order.id,
        artisan_id=order.artisan_id,
        amount_minor=amount,
        currency=order.currency,
        created_by=actor_id,
    )
    session.add(payout)
    session.flush()  # the unique order_id is checked here; the loser stops before the outbox
    session.add(PayoutOutbox(payout_id=payout.id, payload=payload(payout, order)))
    record(
        session,
        actor=actor_id,
        action="payout.create",
        entity_type="payout",
        entity_id=payout.id,
        order_id=order.id,
        artisan_id=order.artisan_id,
        amount_minor=amount,
        currency=order.currency,
        automatic=actor_id is None,
    )
    session.flush()
    return payout


def payload(payout: Payout, order: Order) -> dict[str, object]:
    """What the payment side receives; `payout_id` is its idempotency key."""
    return {
        "payout_id": payout.id,
        "idempotency_key": payout.id,
        "order_id": order.id,
        "artisan_id": order.artisan_id,
        "artisan_name": order.artisan.name,
        "amount_minor": payout.amount_minor,
        "currency": payout.currency,
        "created_at": payout.created_at.isoformat(),
    }
