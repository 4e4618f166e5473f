"""The audit log, read-only (admin): who changed what, when. No route writes or deletes it."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BeforeValidator
from sqlalchemy import func, select

from serving.core.auth import AdminUser
from serving.core.schemas import DB_INT_MAX, AuditEntryPublic, AuditLogPublic, ErrorPublic
from serving.db.models import AuditEntry
from serving.db.session import SessionDep

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


def _iso_only(value: object) -> object:
    # Pydantic also reads a bare number as a Unix time; the schema says ISO 8601, so does this.
    if isinstance(value, str) and not re.match(r"^\d{4}-\d{2}-\d{2}", value):
        raise ValueError("must be an ISO 8601 date or date-time, e.g. 2026-11-26T08:00:00Z")
    return value


IsoTime = Annotated[datetime, BeforeValidator(_iso_only)]
_ERRORS: dict[int | str, dict[str, Any]] = {s: {"model": ErrorPublic} for s in (401, 403, 422)}


@router.get("", response_model=AuditLogPublic, responses=_ERRORS)
def list_audit(
    _: AdminUser,
    session: SessionDep,
    action: str | None = None,
    entity_type: str | None = None,
    entity_id: str | None = None,
    actor_id: Annotated[int | None, Query(ge=1, le=DB_INT_MAX)] = None,
    since: Annotated[IsoTime | None, Query(description="ISO 8601, inclusive")] = None,
    until: Annotated[IsoTime | None, Query(description="ISO 8601, exclusive")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=DB_INT_MAX)] = 0,
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
