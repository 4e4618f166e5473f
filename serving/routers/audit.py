"""The audit log, read-only (admin): who changed what, when. No route writes or deletes it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import func, select

from serving.auth import AdminUser
from serving.db.models import AuditEntry
from serving.db.session import SessionDep
from serving.schemas import AuditEntryPublic, AuditLogPublic, ErrorPublic

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])

_ERRORS: dict[int | str, dict[str, Any]] = {s: {"model": ErrorPublic} for s in (401, 403, 422)}


@router.get("", response_model=AuditLogPublic, responses=_ERRORS)
def list_audit(
    _: AdminUser,
    session: SessionDep,
    action: str | None = None,
    entity_type: str | None = None,
    entity_id: str | None = None,
    actor_id: int | None = None,
    since: Annotated[datetime | None, Query(description="ISO 8601, inclusive")] = None,
    until: Annotated[datetime | None, Query(description="ISO 8601, exclusive")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> AuditLogPublic:
    """Newest first; `count` is the total matching the filters."""
    conds = []
    for column, value in (
        (AuditEntry.action, action),
        (AuditEntry.entity_type, entity_type),
        (AuditEntry.entity_id, entity_id),
        (AuditEntry.actor_id, actor_id),
    ):
        if value is not None:
            conds.append(column == value)
    if since is not None:
        conds.append(AuditEntry.at >= since)
    if until is not None:
        conds.append(AuditEntry.at < until)
    count = session.scalar(select(func.count()).select_from(AuditEntry).where(*conds)) or 0
    rows = session.scalars(
        select(AuditEntry).where(*conds).order_by(AuditEntry.id.desc()).limit(limit).offset(offset)
    ).all()
    return AuditLogPublic(data=[AuditEntryPublic.model_validate(r) for r in rows], count=count)
