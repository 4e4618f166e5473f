"""Apply the Alembic migrations (serving/migrations) to a database URL; `kito db upgrade`."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.exc import SQLAlchemyError

from qc_model.errors import DataError
from serving.core.settings import Settings, load_settings

ALEMBIC_INI = Path(__file__).resolve().parent.parent / "alembic.ini"


def alembic_config(url: str) -> Config:
    cfg = Config(str(ALEMBIC_INI))
    # Set as an attribute, not in the ini's interpolated options, so a '%' in a password is safe.
    cfg.attributes["url"] = url
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema up to `revision`; safe to run on every start and from several replicas."""
    command.upgrade(alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def redacted_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def migrate(settings: Settings) -> str:
    """Upgrade the schema to head; a one-line `DataError` if the database cannot be reached."""
    if settings.db_url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        upgrade(settings.db_url)
        return current_revision(settings.db_url) or "base"
    except SQLAlchemyError as exc:
        first = str(exc).strip().splitlines()[0]
        raise DataError(f"database {redacted_url(settings.db_url)}: {first}") from None


def upgrade_database() -> str:
    settings = load_settings()
    revision = migrate(settings)
    return f"database {redacted_url(settings.db_url)} at revision {revision}"
