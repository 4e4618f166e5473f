"""What `kito db upgrade`, `kito users create`, `kito payouts dispatch`, `kito data
export-reviews` and `kito fsck` do, kept out of the CLI module."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from qc_model.errors import DataError
from serving.auth import create_user
from serving.db.migrate import current_revision, upgrade
from serving.db.session import make_engine, make_sessionmaker
from serving.settings import Settings, load_settings

if TYPE_CHECKING:
    from serving.fsck import FsckReport


def _redacted(url: str) -> str:
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
        raise DataError(f"database {_redacted(settings.db_url)}: {first}") from None


def upgrade_database() -> str:
    settings = load_settings()
    revision = migrate(settings)
    return f"database {_redacted(settings.db_url)} at revision {revision}"


def create_user_with_token(*, name: str, role: str) -> tuple[int, str]:
    settings = load_settings()
    migrate(settings)
    engine = make_engine(settings.db_url)
    try:
        with make_sessionmaker(engine)() as session:
            user, token = create_user(session, name=name, role=role)
            return user.id, token
    finally:
        engine.dispose()


def dispatch_payouts(*, once: bool, echo: Callable[[str], object] = print) -> None:
    """Deliver due payouts to KITO_PAYOUT_WEBHOOK_URL: one pass, or until interrupted."""
    from serving.outbox import Dispatcher

    settings = load_settings()
    if not settings.payout_webhook_url:
        raise DataError("KITO_PAYOUT_WEBHOOK_URL is not set: there is nowhere to send payouts")
    migrate(settings)
    engine = make_engine(settings.db_url)
    try:
        dispatcher = Dispatcher.from_settings(make_sessionmaker(engine), settings)
        if once:
            r = dispatcher.run_once()
            echo(f"claimed {r.claimed}, delivered {r.delivered}, failed {r.failed}")
            return
        echo(f"dispatching payouts to {settings.payout_webhook_url} (Ctrl-C stops)")
        stop = threading.Event()
        try:
            dispatcher.run_forever(stop, settings.payout_poll_s)
        except KeyboardInterrupt:
            stop.set()
    finally:
        engine.dispose()


def export_reviewed(out: Path, *, since: str | None, seed: int) -> str:
    """QC decisions (since an ISO date, if given) as a data set in `out`; the summary line."""
    from serving.export_reviews import export_reviews
    from serving.storage import LocalObjectStore

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
            store = LocalObjectStore(settings.photos_path)
            return export_reviews(session, store, out, since=start, seed=seed).summary()
    finally:
        engine.dispose()


def check_consistency(*, min_age_s: float, verify: bool, repair: bool = False) -> FsckReport:
    """`kito fsck`: the service database and photo store (KITO_* settings), checked together.
    Read-only unless `repair`: then orphan photo files and temporary files of dead writers
    older than `min_age_s` are deleted first (serving.orphans), and the check runs after.
    A `DataError` if the database cannot be read."""
    from serving.fsck import fsck
    from serving.orphans import sweep_orphans
    from serving.storage import LocalObjectStore

    settings = load_settings()
    engine = make_engine(settings.db_url)
    try:
        with make_sessionmaker(engine)() as session:
            store = LocalObjectStore(settings.photos_path)
            repaired: list[str] = []
            if repair:
                repaired += [str(p) for p in store.sweep_interrupted()]
                repaired += sweep_orphans(session, store, min_age_s=min_age_s)
            report = fsck(session, store, min_age_s=min_age_s, verify=verify)
            report.repaired = repaired
            return report
    except SQLAlchemyError as exc:
        first = str(exc).strip().splitlines()[0]
        raise DataError(f"database {_redacted(settings.db_url)}: {first}") from None
    finally:
        engine.dispose()
