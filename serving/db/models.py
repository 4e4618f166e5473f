"""Tables: users (hashed API tokens), inspections (one upload of one piece) and their photos;
orders and their pieces, the review queue and QC decisions, payouts with their outbox, and the
append-only audit log (docs/ORDERS.md); the model registry and shadow results (docs/REGISTRY.md).

Mirrored by the Alembic migrations in serving/migrations; a test compares the two.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

ROLES = ("artisan", "qc", "admin")
# received: stored, not inspected (no model loaded yet); inspected: verdict recorded;
# failed: the inspector raised, the photos and the error are kept for a re-run.
STATUSES = ("received", "inspected", "failed")
PIECE_STATES = ("pending", "accepted", "rejected")
REVIEW_REASONS = ("fail", "review", "audit", "photo_reused")
REVIEW_STATUSES = ("open", "decided")
DECISIONS = ("approve", "reject")
# candidate: registered, not serving; shadow: scored beside the champion, never decides;
# champion: decides verdicts; retired: was champion or shadow once (rollback may restore it).
MODEL_STATES = ("candidate", "shadow", "champion", "retired")


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


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (Index("ix_orders_artisan_created", "artisan_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    artisan_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    currency: Mapped[str] = mapped_column(String(3))
    # No status column: an order is paid exactly when its payout row exists (one source of truth,
    # and a release then writes no existing row, so it cannot deadlock with a piece update).
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)

    artisan: Mapped[User] = relationship(foreign_keys=[artisan_id], lazy="joined")
    pieces: Mapped[list[OrderPiece]] = relationship(
        back_populates="order", order_by="OrderPiece.position", lazy="selectin"
    )
    payout: Mapped[Payout | None] = relationship(back_populates="order", lazy="selectin")


class OrderPiece(Base):
    """One piece of an order. `state` and `reason` are derived (serving.orders.pieces) from the
    piece's inspections and QC decisions, rewritten in the transaction that changes those."""

    __tablename__ = "order_pieces"
    __table_args__ = (UniqueConstraint("order_id", "piece_id", name="uq_order_pieces_piece"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"))
    position: Mapped[int]
    piece_id: Mapped[str] = mapped_column(String(64))
    design_id: Mapped[str] = mapped_column(String(40))
    payout_minor: Mapped[int] = mapped_column(BigInteger())
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(600))
    latest_inspection_id: Mapped[str | None] = mapped_column(ForeignKey("inspections.id"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)

    order: Mapped[Order] = relationship(back_populates="pieces")
    latest_inspection: Mapped[Inspection | None] = relationship(lazy="joined")


class ReviewItem(Base):
    """An inspection waiting for (or given) a QC decision; at most one per inspection."""

    __tablename__ = "review_items"
    __table_args__ = (Index("ix_review_items_status_sort", "status", "sort_key"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=_uuid)
    inspection_id: Mapped[str] = mapped_column(ForeignKey("inspections.id"), unique=True)
    reason: Mapped[str] = mapped_column(String(16), index=True)
    status: Mapped[str] = mapped_column(String(8))
    # Priority without its age term, and the queue's sort key (serving.review.review_queue).
    priority_base: Mapped[float] = mapped_column(Float())
    sort_key: Mapped[float] = mapped_column(Float())
    order_id: Mapped[str | None] = mapped_column(ForeignKey("orders.id"), index=True)
    piece_id: Mapped[str] = mapped_column(String(64))
    design_id: Mapped[str] = mapped_column(String(40), index=True)
    artisan_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    model_verdict: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    inspection: Mapped[Inspection] = relationship(lazy="joined")
    artisan: Mapped[User] = relationship(lazy="joined")
    decisions: Mapped[list[ReviewDecision]] = relationship(
        back_populates="review", order_by="ReviewDecision.seq", lazy="selectin"
    )


class ReviewDecision(Base):
    """Immutable. `seq` 0 is the first decision, a correction is seq n+1 and `corrects` seq n:
    the unique (review_id, seq) lets exactly one of two concurrent deciders win."""

    __tablename__ = "review_decisions"
    __table_args__ = (
        UniqueConstraint("review_id", "seq", name="uq_review_decisions_seq"),
        Index("ix_review_decisions_decided_at", "decided_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=_uuid)
    review_id: Mapped[str] = mapped_column(ForeignKey("review_items.id"))
    seq: Mapped[int]
    decision: Mapped[str] = mapped_column(String(8))
    labels: Mapped[list[str]] = mapped_column(JSON())
    note: Mapped[str | None] = mapped_column(String(2000))
    decided_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)
    corrects: Mapped[str | None] = mapped_column(ForeignKey("review_decisions.id"))

    review: Mapped[ReviewItem] = relationship(back_populates="decisions")
    decider: Mapped[User] = relationship(lazy="joined")


class Payout(Base):
    """Immutable once written. UNIQUE(order_id) is the exactly-once guarantee: whoever inserts
    second gets an IntegrityError and reads the first one's row (docs/ORDERS.md)."""

    __tablename__ = "payouts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=_uuid)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), unique=True)
    artisan_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    amount_minor: Mapped[int] = mapped_column(BigInteger())
    currency: Mapped[str] = mapped_column(String(3))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # None: automatic
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)

    order: Mapped[Order] = relationship(back_populates="payout")
    outbox: Mapped[PayoutOutbox] = relationship(back_populates="payout", lazy="selectin")


class PayoutOutbox(Base):
    """Delivery state of one payout to the payment webhook, inserted with the payout."""

    __tablename__ = "payout_outbox"
    __table_args__ = (Index("ix_payout_outbox_due", "delivered_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    payout_id: Mapped[str] = mapped_column(ForeignKey("payouts.id"), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON())
    attempts: Mapped[int] = mapped_column(default=0)
    # Due time; a claim moves it past the lease, so a dispatcher that dies leaves it due again.
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)
    last_error: Mapped[str | None] = mapped_column(String(500))
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)

    payout: Mapped[Payout] = relationship(back_populates="outbox")


class AuditEntry(Base):
    """Append-only: written in the transaction of the change it records; never updated or
    deleted (on PostgreSQL and SQLite a trigger refuses both, see migration 0002)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_entity", "entity_type", "entity_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    action: Mapped[str] = mapped_column(String(40), index=True)
    entity_type: Mapped[str] = mapped_column(String(20))
    entity_id: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON(), default=dict)


class RegisteredModel(Base):
    """One model package in the registry; its files live in the object store under their sha256.

    At most one champion and one shadow: partial unique indexes, so that of two concurrent
    promotions exactly one commits (the other gets an IntegrityError and is told to retry).
    """

    __tablename__ = "models"
    __table_args__ = (
        Index(
            "uq_models_one_champion",
            "state",
            unique=True,
            sqlite_where=text("state = 'champion'"),
            postgresql_where=text("state = 'champion'"),
        ),
        Index(
            "uq_models_one_shadow",
            "state",
            unique=True,
            sqlite_where=text("state = 'shadow'"),
            postgresql_where=text("state = 'shadow'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # "name@version" of the package: what every verdict records as its model_version.
    version: Mapped[str] = mapped_column(String(64), unique=True)
    sha256: Mapped[str] = mapped_column(String(64))  # model.onnx in the object store
    meta_sha256: Mapped[str] = mapped_column(String(64))  # package.json in the object store
    # The training checkpoint the package was exported from, when stored: retraining
    # fine-tunes from it.
    checkpoint_sha256: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    parent_version: Mapped[str | None] = mapped_column(String(64))
    taxonomy_version: Mapped[str] = mapped_column(String(16))
    dataset_versions: Mapped[dict[str, Any]] = mapped_column(JSON(), default=dict)
    training: Mapped[dict[str, Any]] = mapped_column(JSON(), default=dict)
    git_commit: Mapped[str | None] = mapped_column(String(64))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON(), default=dict)
    # Why a process refused to load it (checksum, taxonomy, shapes, ...); cleared by a later
    # successful promotion.
    refusal_reason: Mapped[str | None] = mapped_column(String(1000))
    refused_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    promoted_by: Mapped[str | None] = mapped_column(String(120))
    promoted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    built_at: Mapped[datetime] = mapped_column(UTCDateTime())  # when the package was exported
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)


class ShadowResult(Base):
    """What the shadow model said about one inspection; never used for its verdict."""

    __tablename__ = "shadow_results"
    __table_args__ = (
        UniqueConstraint("inspection_id", "model_version", name="uq_shadow_results_inspection"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    inspection_id: Mapped[str] = mapped_column(ForeignKey("inspections.id", ondelete="CASCADE"))
    model_version: Mapped[str] = mapped_column(String(64), index=True)
    champion_version: Mapped[str] = mapped_column(String(64))
    champion_verdict: Mapped[str] = mapped_column(String(16))
    verdict: Mapped[str | None] = mapped_column(String(16))
    # Defects each model flagged (verdict policy's "defects"), and the shadow's per-photo scores.
    champion_defects: Mapped[list[str]] = mapped_column(JSON(), default=list)
    defects: Mapped[list[str]] = mapped_column(JSON(), default=list)
    scores: Mapped[list[Any]] = mapped_column(JSON(), default=list)
    error: Mapped[str | None] = mapped_column(String(500))
    elapsed_ms: Mapped[float] = mapped_column(Float(), default=0.0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now, index=True)


class PhotoFingerprint(Base):
    """One inspected photo's perceptual hash (qc_model.fingerprint), split into three chunks
    (22, 21, 21 bits), each indexed: multi-index hashing finds every hash within a few bits of
    a new one by exact chunk lookups (serving.fingerprints)."""

    __tablename__ = "photo_fingerprints"
    # Each chunk's index carries the hash too, so the candidate query (chunk -> hash) is
    # answered from the index alone, without a read of the row per candidate (migration 0005;
    # SQLite's index entries hold the row id already, PostgreSQL's include it).
    __table_args__ = tuple(
        Index(f"ix_photo_fingerprints_{c}_phash", c, "phash", postgresql_include=["id"])
        for c in ("c0", "c1", "c2")
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    inspection_id: Mapped[str] = mapped_column(
        ForeignKey("inspections.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int]
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    order_id: Mapped[str | None] = mapped_column(String(64))
    piece_id: Mapped[str] = mapped_column(String(64))
    frame: Mapped[str] = mapped_column(String(8))
    phash: Mapped[int] = mapped_column(BigInteger())  # the 64 bits as a signed integer
    # What verifies a hash match: {"cells": [piece cells] | null} (qc_model.fingerprint).
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    c0: Mapped[int]
    c1: Mapped[int]
    c2: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)
