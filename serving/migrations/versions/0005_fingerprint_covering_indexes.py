"""Fingerprint chunk indexes that cover the candidate query (chunk, hash, row id).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 14:30:00.000000

The reused-photo lookup (serving.inspection.fingerprints) asks each chunk index for the rows
whose chunk is near the new photo's and reads their hash. With the hash in the index no row is
read per candidate: at a million photos (~280 candidates) that was most of SQLite's lookup time
(docs/BENCHMARKS.md).
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

CHUNKS = ("c0", "c1", "c2")
TABLE = "photo_fingerprints"


def upgrade() -> None:
    for c in CHUNKS:
        op.drop_index(f"ix_{TABLE}_{c}", table_name=TABLE)
        op.create_index(f"ix_{TABLE}_{c}_phash", TABLE, [c, "phash"], postgresql_include=["id"])


def downgrade() -> None:
    for c in CHUNKS:
        op.drop_index(f"ix_{TABLE}_{c}_phash", table_name=TABLE)
        op.create_index(f"ix_{TABLE}_{c}", TABLE, [c])
