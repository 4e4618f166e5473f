"""The order's lock: whatever decides about an order (an upload to one of its pieces, a QC
decision, a release, an automatic payout) holds it, and reads piece states only after it."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from serving.db.models import Order


def lock_order(session: Session, order_id: str) -> Order:
    """The order, locked for the rest of the caller's transaction; reads after this see every
    change committed before it. Raises `NoResultFound` if there is no such order."""
    if session.get_bind().dialect.name == "sqlite":
        # FOR UPDATE does not exist on SQLite; a write takes the database's single write lock
        # (pysqlite opens the transaction right before it), held until commit or rollback.
        session.execute(
            update(Order).where(Order.id == order_id).values(currency=Order.currency),
            execution_options={"synchronize_session": False},
        )
    # FOR NO KEY UPDATE, not FOR UPDATE: a payout insert's foreign-key check takes KEY SHARE on
    # the order, which FOR UPDATE would block; with this lock a concurrent release commits its
    # payout and this transaction's own insert loses cleanly on the unique key, no deadlock.
    return session.execute(
        select(Order)
        .where(Order.id == order_id)
        .with_for_update(of=Order, key_share=True)
        .execution_options(populate_existing=True)
    ).scalar_one()
