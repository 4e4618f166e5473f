"""Photo fingerprints for reused-photo detection; review reasons up to 16 characters.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 12:40:00.000000

Three indexed chunks (22, 21, 21 bits) of each 64-bit hash: multi-index hashing
(serving.fingerprints).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

CHUNKS = ("c0", "c1", "c2")


def upgrade() -> None:
    op.create_table(
        "photo_fingerprints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("inspection_id", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=True),
        sa.Column("piece_id", sa.String(length=64), nullable=False),
        sa.Column("frame", sa.String(length=8), nullable=False),
        sa.Column("phash", sa.BigInteger(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        *(sa.Column(c, sa.Integer(), nullable=False) for c in CHUNKS),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["inspection_id"], ["inspections.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_photo_fingerprints_inspection_id"), "photo_fingerprints", ["inspection_id"]
    )
    for c in CHUNKS:
        op.create_index(op.f(f"ix_photo_fingerprints_{c}"), "photo_fingerprints", [c])
    with op.batch_alter_table("review_items") as batch:
        batch.alter_column(
            "reason",
            existing_type=sa.String(length=8),
            type_=sa.String(length=16),
            existing_nullable=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("review_items") as batch:
        batch.alter_column(
            "reason",
            existing_type=sa.String(length=16),
            type_=sa.String(length=8),
            existing_nullable=False,
        )
    for c in CHUNKS:
        op.drop_index(op.f(f"ix_photo_fingerprints_{c}"), table_name="photo_fingerprints")
    op.drop_index(op.f("ix_photo_fingerprints_inspection_id"), table_name="photo_fingerprints")
    op.drop_table("photo_fingerprints")
