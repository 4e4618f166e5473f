"""The audit log: who changed what, when; one row added in the transaction of each change.

Nothing here updates or deletes a row, and the database refuses to (migration 0002's
triggers). Actions are `<entity>.<verb>`: user.create, order.create, inspection.create,
review.enqueue, review.decide, review.correct, piece.state, payout.create, payout.attempt,
payout.deliver.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from serving.db.models import AuditEntry, User


def record(
    session: Session,
    *,
    actor: User | int | None,
    action: str,
    entity_type: str,
    entity_id: str | int,
    **detail: Any,
) -> AuditEntry:
    """Add an entry to `session`; it commits (or rolls back) with the change it describes.

    `actor` None means the system itself (the dispatcher, an automatic payout, the CLI).
    `detail` must be JSON-serialisable.
    """
    actor_id = actor.id if isinstance(actor, User) else actor
    entry = AuditEntry(
        actor_id=actor_id,
        action=action,
        entity_type=entity_type,
        entity_id=str(entity_id),
        detail=detail,
    )
    session.add(entry)
    return entry
