"""Alembic migrations: they build exactly the schema the models declare, on both backends."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import DBAPIError

from serving.db.migrate import current_revision, upgrade
from serving.db.models import Base


def test_upgrade_matches_models_and_is_repeatable(db_url: str) -> None:
    engine = create_engine(db_url)
    with engine.begin() as conn:
        # Start from nothing, whatever an earlier test left.
        Base.metadata.drop_all(conn)
        conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    upgrade(db_url)
    upgrade(db_url)  # at head already: a no-op, as on every service start
    assert current_revision(db_url) == "0005"
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        tables = set(inspect(conn).get_table_names())
    engine.dispose()
    assert diffs == []
    assert set(Base.metadata.tables) | {"alembic_version"} == tables


def test_audit_log_refuses_update_and_delete(db_url: str) -> None:
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_log (at, action, entity_type, entity_id, detail)"
                " VALUES (CURRENT_TIMESTAMP, 'test.write', 'test', '1', '{}')"
            )
        )
    for statement in ("UPDATE audit_log SET action = 'x'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT action FROM audit_log")).scalars().all() == ["test.write"]
    engine.dispose()


def test_downgrade_to_base(db_url: str) -> None:
    from alembic import command

    from serving.db.migrate import alembic_config

    upgrade(db_url)
    command.downgrade(alembic_config(db_url), "base")
    engine = create_engine(db_url)
    with engine.connect() as conn:
        assert set(inspect(conn).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    upgrade(db_url)
