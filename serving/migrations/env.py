"""Alembic environment: runs migrations online against the URL given by serving.db.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool, text

from serving.db.models import Base

# Any fixed number: replicas starting together take turns at migrating instead of racing.
_PG_LOCK_ID = 0x6B69746F


def _url() -> str:
    url = context.config.attributes.get("url")
    if url:
        return str(url)
    from serving.core.settings import load_settings

    return load_settings().db_url


def run_migrations_online() -> None:
    url = _url()
    engine = create_engine(url, poolclass=pool.NullPool)
    postgres = url.startswith("postgresql")
    with engine.connect() as conn:
        if postgres:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_ID})
            conn.commit()
        try:
            context.configure(
                connection=conn,
                target_metadata=Base.metadata,
                # SQLite cannot ALTER most things in place; batch mode copies the table instead.
                render_as_batch=url.startswith("sqlite"),
            )
            with context.begin_transaction():
                context.run_migrations()
        finally:
            if postgres:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_ID})
                conn.commit()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run `kito db upgrade`")
run_migrations_online()
