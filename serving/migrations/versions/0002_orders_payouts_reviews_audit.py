"""Orders and their pieces, review queue and QC decisions, payouts with their outbox, audit log.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 04:18:52.048187

The audit log is append-only in the database itself: a trigger refuses UPDATE and DELETE on it
(PostgreSQL: a plpgsql function; SQLite: RAISE(ABORT) triggers), whatever client connects.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_PG_APPEND_ONLY = """
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP;
END;
$$ LANGUAGE plpgsql
"""
_PG_TRIGGER = """
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()
"""
_SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER audit_log_no_{op_name.lower()} BEFORE {op_name} ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: {op_name} refused'); END"""
    for op_name in ("UPDATE", "DELETE")
]


def _ts(name: str, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "orders",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("artisan_id", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=False),
        _ts("created_at"),
        sa.ForeignKeyConstraint(["artisan_id"], ["users.id"]),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_orders_artisan_created", "orders", ["artisan_id", "created_at"])

    op.create_table(
        "order_pieces",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("piece_id", sa.String(length=64), nullable=False),
        sa.Column("design_id", sa.String(length=40), nullable=False),
        sa.Column("payout_minor", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=600), nullable=True),
        sa.Column("latest_inspection_id", sa.String(length=32), nullable=True),
        _ts("updated_at"),
        sa.ForeignKeyConstraint(["latest_inspection_id"], ["inspections.id"]),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("order_id", "piece_id", name="uq_order_pieces_piece"),
    )

    op.create_table(
        "payouts",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("artisan_id", sa.Integer(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        _ts("created_at"),
        sa.ForeignKeyConstraint(["artisan_id"], ["users.id"]),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"]),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"]),
        sa.PrimaryKeyConstraint("id"),
        # The exactly-once guarantee: one payout per order, whoever commits first.
        sa.UniqueConstraint("order_id"),
    )

    op.create_table(
        "payout_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("payout_id", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _ts("next_attempt_at"),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        _ts("delivered_at", nullable=True),
        _ts("created_at"),
        sa.ForeignKeyConstraint(["payout_id"], ["payouts.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("payout_id"),
    )
    op.create_index("ix_payout_outbox_due", "payout_outbox", ["delivered_at", "next_attempt_at"])

    op.create_table(
        "review_items",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("inspection_id", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("priority_base", sa.Float(), nullable=False),
        sa.Column("sort_key", sa.Float(), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=True),
        sa.Column("piece_id", sa.String(length=64), nullable=False),
        sa.Column("design_id", sa.String(length=40), nullable=False),
        sa.Column("artisan_id", sa.Integer(), nullable=False),
        sa.Column("model_verdict", sa.String(length=16), nullable=False),
        _ts("created_at"),
        _ts("decided_at", nullable=True),
        sa.ForeignKeyConstraint(["artisan_id"], ["users.id"]),
        sa.ForeignKeyConstraint(["inspection_id"], ["inspections.id"]),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("inspection_id"),
    )
    op.create_index(op.f("ix_review_items_artisan_id"), "review_items", ["artisan_id"])
    op.create_index(op.f("ix_review_items_design_id"), "review_items", ["design_id"])
    op.create_index(op.f("ix_review_items_order_id"), "review_items", ["order_id"])
    op.create_index(op.f("ix_review_items_reason"), "review_items", ["reason"])
    op.create_index("ix_review_items_status_sort", "review_items", ["status", "sort_key"])

    op.create_table(
        "review_decisions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("review_id", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("decision", sa.String(length=8), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("note", sa.String(length=2000), nullable=True),
        sa.Column("decided_by", sa.Integer(), nullable=False),
        _ts("decided_at"),
        sa.Column("corrects", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(["corrects"], ["review_decisions.id"]),
        sa.ForeignKeyConstraint(["decided_by"], ["users.id"]),
        sa.ForeignKeyConstraint(["review_id"], ["review_items.id"]),
        sa.PrimaryKeyConstraint("id"),
        # First decider wins: a second decision with the same seq is a unique violation.
        sa.UniqueConstraint("review_id", "seq", name="uq_review_decisions_seq"),
    )
    op.create_index("ix_review_decisions_decided_at", "review_decisions", ["decided_at"])

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        _ts("at"),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("entity_type", sa.String(length=20), nullable=False),
        sa.Column("entity_id", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["actor_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_audit_log_action"), "audit_log", ["action"])
    op.create_index(op.f("ix_audit_log_actor_id"), "audit_log", ["actor_id"])
    op.create_index(op.f("ix_audit_log_at"), "audit_log", ["at"])
    op.create_index("ix_audit_log_entity", "audit_log", ["entity_type", "entity_id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_APPEND_ONLY)
        op.execute(_PG_TRIGGER)
    else:
        for statement in _SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    # Dropping the table drops its triggers on both backends.
    op.drop_table("audit_log")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
    op.drop_table("review_decisions")
    op.drop_table("review_items")
    op.drop_table("payout_outbox")
    op.drop_table("payouts")
    op.drop_table("order_pieces")
    op.drop_table("orders")
