"""What `kito fsck` does, kept out of the CLI module."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from qc_model.errors import DataError
from serving.core.settings import load_settings
from serving.db.migrate import redacted_url
from serving.db.session import make_engine, make_sessionmaker

if TYPE_CHECKING:
    from serving.store.fsck import FsckReport


def check_consistency(*, min_age_s: float, verify: bool, repair: bool = False) -> FsckReport:
    """`kito fsck`: the service database and photo store (KITO_* settings), checked together.
    Read-only unless `repair`: then orphan photo files (and, in a local folder, temporary files
    of dead writers) older than `min_age_s` are deleted first (serving.store.orphans), and the
    check runs after. A `DataError` if the database cannot be read."""
    from serving.store.fsck import fsck
    from serving.store.orphans import sweep_orphans
    from serving.store.storage import LocalObjectStore
    from serving.store.stores import photo_store

    settings = load_settings()
    engine = make_engine(settings.db_url)
    try:
        with make_sessionmaker(engine)() as session:
            store = photo_store(settings)
            repaired: list[str] = []
            if repair:
                if isinstance(store, LocalObjectStore):
                    repaired += [str(p) for p in store.sweep_interrupted()]
                repaired += sweep_orphans(session, store, min_age_s=min_age_s)
            report = fsck(session, store, min_age_s=min_age_s, verify=verify)
            report.repaired = repaired
            return report
    except SQLAlchemyError as exc:
        first = str(exc).strip().splitlines()[0]
        raise DataError(f"database {redacted_url(settings.db_url)}: {first}") from None
    finally:
        engine.dispose()
