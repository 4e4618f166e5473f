"""Initial schema: users with hashed tokens, inspections, photos.

Revision ID: 0001
Revises:
Create Date: 2026-11-26 01:56:43.673251
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_table(
        "inspections",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("design_id", sa.String(length=40), nullable=False),
        sa.Column("piece_id", sa.String(length=64), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=True),
        sa.Column("model_version", sa.String(length=64), nullable=True),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("timings_ms", sa.JSON(), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("idempotency_key", sa.String(length=128), nullable=True),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("owner_id", "idempotency_key", name="uq_inspections_owner_idem"),
    )
    op.create_index(op.f("ix_inspections_design_id"), "inspections", ["design_id"], unique=False)
    op.create_index(
        "ix_inspections_owner_created", "inspections", ["owner_id", "created_at"], unique=False
    )
    op.create_index(op.f("ix_inspections_piece_id"), "inspections", ["piece_id"], unique=False)
    op.create_index(op.f("ix_inspections_verdict"), "inspections", ["verdict"], unique=False)

    op.create_table(
        "photos",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("inspection_id", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("media_type", sa.String(length=32), nullable=False),
        sa.Column("byte_size", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(["inspection_id"], ["inspections.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("inspection_id", "position", name="uq_photos_position"),
    )
    op.create_index(op.f("ix_photos_sha256"), "photos", ["sha256"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_photos_sha256"), table_name="photos")

    op.drop_table("photos")
    op.drop_index(op.f("ix_inspections_verdict"), table_name="inspections")
    op.drop_index(op.f("ix_inspections_piece_id"), table_name="inspections")
    op.drop_index("ix_inspections_owner_created", table_name="inspections")
    op.drop_index(op.f("ix_inspections_design_id"), table_name="inspections")

    op.drop_table("inspections")
    op.drop_table("users")
