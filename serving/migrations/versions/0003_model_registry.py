"""Model registry (packages, their states and provenance) and shadow-model results.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 05:20:00.000000

At most one champion and one shadow is enforced by partial unique indexes (PostgreSQL and
SQLite both have them), so two concurrent promotions cannot both commit.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _at_most_one(state: str) -> None:
    where = sa.text(f"state = '{state}'")
    op.create_index(
        f"uq_models_one_{state}",
        "models",
        ["state"],
        unique=True,
        sqlite_where=where,
        postgresql_where=where,
    )


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("meta_sha256", sa.String(length=64), nullable=False),
        sa.Column("checkpoint_sha256", sa.String(length=64), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("parent_version", sa.String(length=64), nullable=True),
        sa.Column("taxonomy_version", sa.String(length=16), nullable=False),
        sa.Column("dataset_versions", sa.JSON(), nullable=False),
        sa.Column("training", sa.JSON(), nullable=False),
        sa.Column("git_commit", sa.String(length=64), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("refusal_reason", sa.String(length=1000), nullable=True),
        _ts("refused_at", nullable=True),
        sa.Column("promoted_by", sa.String(length=120), nullable=True),
        _ts("promoted_at", nullable=True),
        _ts("built_at"),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("version"),
    )
    _at_most_one("champion")
    _at_most_one("shadow")

    op.create_table(
        "shadow_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("inspection_id", sa.String(length=32), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("champion_version", sa.String(length=64), nullable=False),
        sa.Column("champion_verdict", sa.String(length=16), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=True),
        sa.Column("champion_defects", sa.JSON(), nullable=False),
        sa.Column("defects", sa.JSON(), nullable=False),
        sa.Column("scores", sa.JSON(), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("elapsed_ms", sa.Float(), nullable=False),
        _ts("created_at"),
        sa.ForeignKeyConstraint(["inspection_id"], ["inspections.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("inspection_id", "model_version", name="uq_shadow_results_inspection"),
    )
    op.create_index(op.f("ix_shadow_results_model_version"), "shadow_results", ["model_version"])
    op.create_index(op.f("ix_shadow_results_created_at"), "shadow_results", ["created_at"])


def downgrade() -> None:
    op.drop_table("shadow_results")
    op.drop_table("models")
