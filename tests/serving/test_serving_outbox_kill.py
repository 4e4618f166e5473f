"""`kito payouts dispatch` killed with SIGKILL while a payout is being delivered: after a
restart the receiver has been paid each payout exactly once (it dedupes by payout id, the
Idempotency-Key) and none is lost.

    .venv/bin/python -m pytest -m slow tests/serving/test_serving_outbox_kill.py
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from order_helpers import paid_orders
from payout_receiver import Receiver, running
from sqlalchemy import select

from serving.core.settings import Settings
from serving.db.models import PayoutOutbox
from serving.store.fsck import fsck

REPO = Path(__file__).resolve().parents[2]
N = 8


def _dispatcher(settings: Settings, url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "KITO_DATA_DIR": str(settings.data_dir),
        "KITO_DATABASE_URL": settings.db_url,
        "KITO_PAYOUT_WEBHOOK_URL": url,
        # The lease a claim takes is the timeout + 30 s: short, so the test waits ~31 s.
        "KITO_PAYOUT_WEBHOOK_TIMEOUT_S": "1",
        "KITO_PAYOUT_RETRY_BASE_S": "0.2",
        "KITO_PAYOUT_POLL_S": "0.2",
    }
    with log.open("ab") as f:
        return subprocess.Popen(
            [sys.executable, "-m", "kito", "payouts", "dispatch"],
            env=env,
            stdout=f,
            stderr=subprocess.STDOUT,
        )


def _delivered(client: TestClient) -> int:
    with client.app.state.sessionmaker() as s:  # type: ignore[attr-defined]
        rows = s.scalars(select(PayoutOutbox)).all()
        return sum(r.delivered_at is not None for r in rows)


@pytest.mark.slow
def test_dispatcher_killed_mid_delivery_pays_each_once(
    client: TestClient, make_user, settings: Settings, tmp_path: Path
) -> None:
    orders = paid_orders(client, make_user, N)
    payouts = {o["payout"]["id"]: o["payout"]["amount_minor"] for o in orders}
    log = tmp_path / "dispatch.log"
    # The first delivery is paid by the receiver, then its answer is held back: the dispatcher
    # is killed while it waits, before it can record the delivery.
    with running(Receiver(hold_first=1, hold_s=0.9)) as rx:
        first = _dispatcher(settings, rx.url, log)
        assert rx.received.wait(60), log.read_text()
        first.send_signal(signal.SIGKILL)
        first.wait(30)
        assert _delivered(client) == 0  # nothing recorded: the kill came first
        second = _dispatcher(settings, rx.url, log)
        try:
            deadline = time.monotonic() + 120
            while _delivered(client) < N and time.monotonic() < deadline:
                time.sleep(0.5)
        finally:
            second.terminate()
            second.wait(30)
        assert _delivered(client) == N, log.read_text()
        # The receiver saw the interrupted payout twice and paid it once; none is missing.
        keys = [r["headers"]["idempotency-key"] for r in rx.requests]
        assert sorted(set(keys)) == sorted(payouts) and len(keys) == N + 1
        assert {k: p["amount_minor"] for k, p in rx.payments.items()} == payouts
        assert all(
            r["payload"]["payout_id"] == r["headers"]["idempotency-key"] for r in rx.requests
        )
    with client.app.state.sessionmaker() as s:  # type: ignore[attr-defined]
        report = fsck(s, client.app.state.store)  # type: ignore[attr-defined]
    assert report.ok, report.lines()
