"""The payout outbox: delivery with retries and backoff, crash recovery, disjoint claims."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from order_helpers import paid_orders
from payout_receiver import Receiver, running
from sqlalchemy import select, text
from typer.testing import CliRunner

from serving.app import create_app
from serving.core.settings import Settings
from serving.db.models import AuditEntry, PayoutOutbox
from serving.inspection.pipeline import InspectorStatus
from serving.orders.outbox import Delivery, Dispatcher, post_json

T0 = datetime(2030, 1, 1, tzinfo=UTC)  # a fixed clock: every row is due by then


def outbox(client: TestClient) -> list[PayoutOutbox]:
    with client.app.state.sessionmaker() as s:  # type: ignore[attr-defined]
        return list(s.scalars(select(PayoutOutbox).order_by(PayoutOutbox.id)).all())


def dispatcher(client: TestClient, url: str, **kw: Any) -> Dispatcher:
    opts = {"timeout_s": 5.0, "retry_base_s": 10.0, "retry_max_s": 60.0, **kw}
    return Dispatcher(client.app.state.sessionmaker, url, **opts)  # type: ignore[attr-defined]


def test_retries_with_backoff_until_delivered(client: TestClient, make_user) -> None:
    (order,) = paid_orders(client, make_user)
    payout_id = order["payout"]["id"]
    with running(Receiver(fail_first=2)) as rx:
        d = dispatcher(client, rx.url)
        assert d.run_once(T0).failed == 1
        (row,) = outbox(client)
        assert row.attempts == 1 and row.delivered_at is None
        assert row.next_attempt_at == T0 + timedelta(seconds=10)
        assert row.last_error is not None and row.last_error.startswith("HTTP 503")
        assert d.run_once(T0 + timedelta(seconds=9)).claimed == 0  # not due yet
        assert d.run_once(T0 + timedelta(seconds=10)).failed == 1
        # Doubled: the second failure waits 20 s.
        assert outbox(client)[0].next_attempt_at == T0 + timedelta(seconds=30)
        assert d.run_once(T0 + timedelta(seconds=29)).claimed == 0
        assert d.run_once(T0 + timedelta(seconds=30)).delivered == 1
        assert d.run_once(T0 + timedelta(days=1)).claimed == 0  # delivered is final
    assert [r["headers"]["kito-attempt"] for r in rx.requests] == ["1", "2", "3"]
    assert {r["headers"]["idempotency-key"] for r in rx.requests} == {payout_id}
    assert rx.payments[payout_id] == {
        "payout_id": payout_id,
        "idempotency_key": payout_id,
        "order_id": "ORD-0",
        "artisan_id": order["artisan_id"],
        "artisan_name": "Wanjiru",
        "amount_minor": 1000,
        "currency": "KES",
        "created_at": rx.payments[payout_id]["created_at"],
    }
    (row,) = outbox(client)
    assert row.delivered_at is not None and row.attempts == 3 and row.last_error is None
    with client.app.state.sessionmaker() as s:  # type: ignore[attr-defined]
        actions = s.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.entity_id == payout_id)
            .order_by(AuditEntry.id)
        ).all()
    assert actions == ["payout.create", "payout.attempt", "payout.attempt", "payout.deliver"]


def test_backoff_is_capped() -> None:
    d = Dispatcher(None, "http://x", retry_base_s=5, retry_max_s=60)  # type: ignore[arg-type]
    assert [d.backoff(n).total_seconds() for n in range(1, 7)] == [5, 10, 20, 40, 60, 60]


class Crash(BaseException):
    """The dispatcher process dying (not an error it could catch and record)."""


def test_crash_after_posting_before_marking_delivered(client: TestClient, make_user) -> None:
    """The receiver paid, the dispatcher died before writing that down: the row is due again
    when its lease runs out, the next post carries the same idempotency key, the receiver pays
    nothing twice, and the payout ends delivered. Nothing lost, nothing doubled."""
    (order,) = paid_orders(client, make_user)
    with running(Receiver()) as rx:

        def post_then_die(*args: Any) -> Delivery:
            post_json(*args)
            raise Crash

        doomed = dispatcher(client, rx.url, post=post_then_die)
        with pytest.raises(Crash):
            doomed.run_once(T0)
        (row,) = outbox(client)
        assert row.delivered_at is None and row.attempts == 1
        assert len(rx.payments) == 1

        restarted = dispatcher(client, rx.url)
        assert restarted.run_once(T0 + timedelta(seconds=1)).claimed == 0  # still leased
        lease_end = T0 + restarted.lease
        assert restarted.run_once(lease_end).delivered == 1
    assert len(rx.requests) == 2 and len(rx.payments) == 1
    assert {r["headers"]["idempotency-key"] for r in rx.requests} == {order["payout"]["id"]}
    assert outbox(client)[0].delivered_at is not None


def test_unreachable_webhook_is_a_failed_attempt(client: TestClient, make_user) -> None:
    paid_orders(client, make_user)
    d = dispatcher(client, "http://127.0.0.1:9/nothing-listens-here", timeout_s=2.0)
    assert d.run_once(T0).failed == 1
    (row,) = outbox(client)
    assert row.delivered_at is None and row.last_error


def test_concurrent_dispatchers_post_each_payout_once(client: TestClient, make_user) -> None:
    paid_orders(client, make_user, n=6)
    with running(Receiver()) as rx:
        workers = [dispatcher(client, rx.url, batch=2) for _ in range(4)]
        barrier = threading.Barrier(len(workers))

        def work(d: Dispatcher) -> None:
            barrier.wait()
            while d.run_once(T0).claimed:
                pass

        threads = [threading.Thread(target=work, args=(d,)) for d in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(rx.requests) == 6 and len(rx.payments) == 6
    assert all(r.delivered_at is not None and r.attempts == 1 for r in outbox(client))


@pytest.mark.parametrize(
    "db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_postgres_claim_skips_locked_rows(client: TestClient, make_user) -> None:
    paid_orders(client, make_user, n=3)
    first = outbox(client)[0]
    engine = client.app.state.engine  # type: ignore[attr-defined]
    with engine.connect() as other:  # another dispatcher, mid-delivery of the first row
        other.execute(
            text("SELECT id FROM payout_outbox WHERE id = :id FOR UPDATE"), {"id": first.id}
        )
        claims = dispatcher(client, "http://unused").claim(T0)  # does not wait for the lock
        other.rollback()
    assert sorted(c.outbox_id for c in claims) == [r.id for r in outbox(client)][1:]


def test_the_service_runs_the_dispatcher(settings, inspector, make_user) -> None:
    with running(Receiver(fail_first=1)) as rx:
        s = Settings.model_validate(
            {
                **settings.model_dump(),
                "payout_webhook_url": rx.url,
                "payout_poll_s": 0.05,
                "payout_retry_base_s": 0.05,
            }
        )
        app = create_app(s, inspector_status=InspectorStatus(inspector, "fake"))
        with TestClient(app) as service:
            thread = app.state.payout_dispatcher.thread
            assert thread.is_alive()
            (order,) = paid_orders(service, make_user)
            # Polling for a background thread's work; the deadline only bounds a broken run.
            deadline = time.monotonic() + 30
            while outbox(service)[0].delivered_at is None and time.monotonic() < deadline:
                time.sleep(0.05)
            _, staff = make_user("qc", "Q2")
            payout = service.get("/api/v1/orders/ORD-0", headers=staff).json()["payout"]
        assert not thread.is_alive()  # the app's shutdown stopped it
    assert list(rx.payments) == [order["payout"]["id"]] and len(rx.requests) == 2
    assert payout["status"] == "delivered" and payout["attempts"] == 2


def test_cli_dispatch_once(client: TestClient, make_user, settings, tmp_path: Path) -> None:
    from kito.cli import app

    paid_orders(client, make_user)
    env = {
        "KITO_DATA_DIR": str(tmp_path / "data"),
        "KITO_DATABASE_URL": settings.db_url,
        "KITO_CATALOG_DIR": str(settings.catalog_dir),
    }
    r = CliRunner().invoke(app, ["payouts", "dispatch", "--once"], env=env)
    assert r.exit_code == 2 and "KITO_PAYOUT_WEBHOOK_URL is not set" in r.stderr
    with running(Receiver()) as rx:
        env["KITO_PAYOUT_WEBHOOK_URL"] = rx.url
        r = CliRunner().invoke(app, ["payouts", "dispatch", "--once"], env=env)
        assert r.exit_code == 0, r.output
        assert "claimed 1, delivered 1, failed 0" in r.stdout
        r = CliRunner().invoke(app, ["payouts", "dispatch", "--once"], env=env)
        assert "claimed 0, delivered 0, failed 0" in r.stdout
    assert len(rx.payments) == 1
