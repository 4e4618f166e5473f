"""Tables: users (hashed API tokens), inspections (one upload of one piece) and their photos.

Mirrored by the Alembic migrations in serving/migrations; a test compares the two.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, Dialect, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

ROLES = ("artisan", "qc", "admin")
# received: stored, not inspected (no model loaded yet); inspected: verdict recorded;
# failed: the inspector raised, the photos and the error are kept for a re-run.
STATUSES = ("received", "inspected", "failed")


def _now() -> datetime:
    return datetime.now(UTC)


def _uuid() -> str:
    return uuid.uuid4().hex


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on every backend: SQLite stores no offset and hands back naive values."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON,
        datetime: DateTime(timezone=True),
    }


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    role: Mapped[str] = mapped_column(String(16))
    # sha256 hex of the bearer token; the token itself is shown once and never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)


class Inspection(Base):
    __tablename__ = "inspections"
    __table_args__ = (
        # The idempotency guarantee lives here, in the database, so it holds across replicas.
        UniqueConstraint("owner_id", "idempotency_key", name="uq_inspections_owner_idem"),
        Index("ix_inspections_owner_created", "owner_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=_uuid)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    design_id: Mapped[str] = mapped_column(String(40), index=True)
    piece_id: Mapped[str] = mapped_column(String(64), index=True)
    order_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    verdict: Mapped[str | None] = mapped_column(String(16), index=True)
    model_version: Mapped[str | None] = mapped_column(String(64))
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    timings_ms: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(String(500))
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    request_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)

    owner: Mapped[User] = relationship(lazy="joined")
    photos: Mapped[list[Photo]] = relationship(
        back_populates="inspection", order_by="Photo.position", lazy="selectin"
    )


class Photo(Base):
    __tablename__ = "photos"
    __table_args__ = (UniqueConstraint("inspection_id", "position", name="uq_photos_position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    inspection_id: Mapped[str] = mapped_column(ForeignKey("inspections.id", ondelete="CASCADE"))
    position: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    media_type: Mapped[str] = mapped_column(String(32))
    byte_size: Mapped[int]
    width: Mapped[int]
    height: Mapped[int]
    # What the client called the file, for people only; storage keys are the sha256.
    filename: Mapped[str | None] = mapped_column(String(128))

    inspection: Mapped[Inspection] = relationship(back_populates="photos")
