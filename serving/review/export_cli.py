"""What `kito data export-reviews` does, kept out of the CLI module."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from qc_model.errors import DataError
from serving.core.settings import load_settings
from serving.db.migrate import migrate
from serving.db.session import make_engine, make_sessionmaker


def export_reviewed(out: Path, *, since: str | None, seed: int) -> str:
    """QC decisions (since an ISO date, if given) as a data set in `out`; the summary line."""
    from serving.review.export_reviews import export_reviews
    from serving.store.stores import photo_store

    start = None
    if since is not None:
        try:
            start = datetime.fromisoformat(since)
        except ValueError:
            raise DataError(f"--since: not an ISO date or time: {since!r}") from None
        start = start if start.tzinfo else start.replace(tzinfo=UTC)
    settings = load_settings()
    migrate(settings)
    engine = make_engine(settings.db_url)
    try:
        with make_sessionmaker(engine)() as session:
            store = photo_store(settings)
            return export_reviews(session, store, out, since=start, seed=seed).summary()
    finally:
        engine.dispose()
