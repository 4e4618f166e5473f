"""Alembic migrations: they build exactly the schema the models declare, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from serving.db.migrate import current_revision, upgrade
from serving.db.models import Base


def test_upgrade_matches_models_and_is_repeatable(db_url: str) -> None:
    engine = create_engine(db_url)
    with engine.begin() as conn:
        # Start from nothing, whatever an earlier test left.
        for table in ("photos", "inspections", "users", "alembic_version"):
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
    upgrade(db_url)
    upgrade(db_url)  # at head already: a no-op, as on every service start
    assert current_revision(db_url) == "0001"
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        tables = set(inspect(conn).get_table_names())
    engine.dispose()
    assert diffs == []
    assert {"users", "inspections", "photos", "alembic_version"} <= tables


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
