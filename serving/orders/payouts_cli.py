"""What `kito payouts dispatch` does, kept out of the CLI module."""

from __future__ import annotations

import threading
from collections.abc import Callable

from qc_model.errors import DataError
from serving.core.settings import load_settings
from serving.db.migrate import migrate
from serving.db.session import make_engine, make_sessionmaker


def dispatch_payouts(*, once: bool, echo: Callable[[str], object] = print) -> None:
    """Deliver due payouts to KITO_PAYOUT_WEBHOOK_URL: one pass, or until interrupted."""
    from serving.orders.outbox import Dispatcher

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
