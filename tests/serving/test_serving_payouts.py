"""The payout gate: one payout per order, whatever races, retries or crashes happen."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient
from order_helpers import make_order, piece, submit
from sqlalchemy import func, select

from serving.db.models import AuditEntry, Order, Payout, PayoutOutbox


def _counts(client: TestClient) -> tuple[int, int, int]:
    """(payouts, outbox rows, payout.create audit entries)"""
    with client.app.state.sessionmaker() as s:  # type: ignore[attr-defined]
        payouts = s.scalar(select(func.count()).select_from(Payout)) or 0
        outbox = s.scalar(select(func.count()).select_from(PayoutOutbox)) or 0
        audit = s.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "payout.create")
        )
    return payouts, outbox, audit or 0


def test_last_acceptance_pays_automatically(client: TestClient, make_user) -> None:
    artisan, ha = make_user("artisan", "Wanjiru")
    _, staff = make_user("qc", "Q")
    make_order(client, staff, artisan, {"P1": 45000, "P2": 30000})
    submit(client, ha, "P1")
    assert client.get("/api/v1/orders/ORD-1", headers=ha).json()["payout"] is None
    submit(client, ha, "P2", seed=1)
    order = client.get("/api/v1/orders/ORD-1", headers=ha).json()
    assert order["status"] == "paid" and order["accepted_minor"] == 75000
    assert (order["paid_minor"], order["pending_minor"]) == (75000, 0)
    payout = order["payout"]
    assert payout["amount_minor"] == 75000 and payout["currency"] == "KES"
    assert payout["status"] == "pending" and payout["attempts"] == 0
    assert payout["delivered_at"] is None
    assert _counts(client) == (1, 1, 1)
    with client.app.state.sessionmaker() as s:  # type: ignore[attr-defined]
        box = s.scalars(select(PayoutOutbox)).one()
    assert box.payload == {
        "payout_id": payout["id"],
        "idempotency_key": payout["id"],
        "order_id": "ORD-1",
        "artisan_id": artisan,
        "artisan_name": "Wanjiru",
        "amount_minor": 75000,
        "currency": "KES",
        "created_at": box.payload["created_at"],
    }
    # An explicit release afterwards answers with the same payout.
    r = client.post("/api/v1/orders/ORD-1/release", headers=staff)
    assert r.status_code == 200 and r.json()["payout"]["id"] == payout["id"]
    assert _counts(client) == (1, 1, 1)
    # A paid order takes no more photos: its pieces are final.
    r = client.post(
        "/api/v1/inspections",
        headers=ha,
        data={"design_id": order["pieces"][0]["design_id"], "piece_id": "P1", "order_id": "ORD-1"},
        files=[("photos", ("a.jpg", b"x" * 200, "image/jpeg"))],
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "order_paid"


def test_release_waits_for_every_piece(client: TestClient, make_user, inspector) -> None:
    artisan, ha = make_user("artisan")
    _, staff = make_user("qc", "Q")
    make_order(client, staff, artisan, {"P1": 100, "P2": 200})
    submit(client, ha, "P1")
    r = client.post("/api/v1/orders/ORD-1/release", headers=staff)
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_ready"
    assert "P2" in r.json()["error"]["message"] and "no photo" in r.json()["error"]["message"]
    assert client.post("/api/v1/orders/ORD-1/release", headers=ha).status_code == 403
    assert client.post("/api/v1/orders/ORD-1/release").status_code == 401
    assert client.post("/api/v1/orders/NOPE/release", headers=staff).status_code == 404
    assert _counts(client) == (0, 0, 0)


def test_manual_release_when_automatic_payouts_are_off(make_client, make_user) -> None:
    manual = make_client(auto_payout=False)
    artisan, ha = make_user("artisan")
    _, staff = make_user("qc", "Q")
    make_order(manual, staff, artisan, {"P1": 100, "P2": 200})
    submit(manual, ha, "P1")
    submit(manual, ha, "P2", seed=1)
    order = manual.get("/api/v1/orders/ORD-1", headers=staff).json()
    assert order["status"] == "open" and order["accepted_minor"] == 300
    r = manual.post("/api/v1/orders/ORD-1/release", headers=staff)
    assert r.status_code == 200 and r.json()["status"] == "paid"
    assert r.json()["payout"]["amount_minor"] == 300
    assert _counts(manual) == (1, 1, 1)


def test_twenty_concurrent_releases_pay_once(make_client, make_user) -> None:
    """Twenty QC clicks at once, each its own HTTP client and database session through the
    real app: one payout, one outbox row, and all twenty answers name it."""
    manual = make_client(auto_payout=False)
    artisan, ha = make_user("artisan")
    _, staff = make_user("qc", "Q")
    make_order(manual, staff, artisan, {"P1": 100, "P2": 200})
    submit(manual, ha, "P1")
    submit(manual, ha, "P2", seed=1)
    app = manual.app
    n = 20
    barrier = threading.Barrier(n)
    answers: list[Any] = [None] * n

    def release(i: int) -> None:
        c = TestClient(app, raise_server_exceptions=False)  # one client (and session) each
        barrier.wait()
        r = c.post("/api/v1/orders/ORD-1/release", headers=staff)
        answers[i] = (r.status_code, r.json())

    threads = [threading.Thread(target=release, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [code for code, _ in answers] == [200] * n, answers
    assert len({body["payout"]["id"] for _, body in answers}) == 1
    assert _counts(manual) == (1, 1, 1)


def test_a_stale_release_loses_on_the_constraint(make_client, make_user, monkeypatch) -> None:
    """A release that read "no payout yet" just before another committed one inserts, hits
    UNIQUE(order_id), rolls back and answers with the winner's payout."""
    import serving.orders.payouts as payouts

    manual = make_client(auto_payout=False)
    artisan, ha = make_user("artisan")
    _, staff = make_user("qc", "Q")
    make_order(manual, staff, artisan, {"P1": 100})
    submit(manual, ha, "P1")
    first = manual.post("/api/v1/orders/ORD-1/release", headers=staff).json()["payout"]
    real = payouts.existing_payout
    calls = {"n": 0}

    def stale_once(session, order_id):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        return None if calls["n"] == 1 else real(session, order_id)

    monkeypatch.setattr(payouts, "existing_payout", stale_once)
    r = manual.post("/api/v1/orders/ORD-1/release", headers=staff)
    assert r.status_code == 200 and r.json()["payout"]["id"] == first["id"]
    assert calls["n"] >= 2  # it did go past the stale read to the insert and back
    assert _counts(manual) == (1, 1, 1)


# PostgreSQL only: SQLite has one writer, so no transaction can commit under the upload's.
@pytest.mark.parametrize(
    "db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_automatic_payout_racing_a_release_keeps_the_inspection(
    client: TestClient, make_user, monkeypatch
) -> None:
    """The last piece's inspection finds a payout inserted under it (a release committed in
    between): only the payout's savepoint is undone, the inspection and its state are kept."""
    import serving.orders.payouts as payouts

    artisan, ha = make_user("artisan")
    _, staff = make_user("qc", "Q")
    make_order(client, staff, artisan, {"P1": 100})
    real_held = payouts.held_pieces

    def release_in_between(session, order):  # type: ignore[no-untyped-def]
        held = real_held(session, order)
        if not held:  # a release (another session and transaction) commits a payout now
            with client.app.state.sessionmaker() as other:  # type: ignore[attr-defined]
                racing = other.get(Order, order.id)
                payouts._insert(other, racing, actor_id=None)
                other.commit()
        return held

    monkeypatch.setattr(payouts, "held_pieces", release_in_between)
    body = submit(client, ha, "P1")
    order = client.get("/api/v1/orders/ORD-1", headers=ha).json()
    assert order["status"] == "paid" and piece(order, "P1")["state"] == "accepted"
    assert piece(order, "P1")["latest_inspection_id"] == body["id"]
    assert _counts(client) == (1, 1, 1)


def test_crash_before_commit_leaves_nothing_and_a_retry_pays(
    make_client, make_user, monkeypatch
) -> None:
    import serving.orders.payouts as payouts

    manual = make_client(auto_payout=False)
    artisan, ha = make_user("artisan")
    _, staff = make_user("qc", "Q")
    make_order(manual, staff, artisan, {"P1": 100})
    submit(manual, ha, "P1")

    def crash(*_a: object, **_k: object) -> None:
        raise RuntimeError("process killed between the payout insert and the commit")

    monkeypatch.setattr(payouts, "record", crash)
    r = manual.post("/api/v1/orders/ORD-1/release", headers=staff)
    assert r.status_code == 500 and "Traceback" not in r.text
    assert _counts(manual) == (0, 0, 0)  # neither payout nor outbox row survived alone
    monkeypatch.undo()
    r = manual.post("/api/v1/orders/ORD-1/release", headers=staff)
    assert r.status_code == 200 and r.json()["payout"]["amount_minor"] == 100
    assert _counts(manual) == (1, 1, 1)


def test_last_two_pieces_accepted_at_once_still_pay(client: TestClient, make_user) -> None:
    """Both pieces' inspections commit at the same moment: without the order's row lock each
    could see the other still pending and nobody would pay. Repeated on fresh orders."""
    artisan, ha = make_user("artisan")
    _, staff = make_user("qc", "Q")
    app = client.app

    def upload(order_id: str, piece_id: str, seed: int, barrier: threading.Barrier, done: list):
        c = TestClient(app, raise_server_exceptions=False)
        barrier.wait()
        done.append(submit(c, ha, piece_id, order_id=order_id, seed=seed)["id"])

    for round_ in range(3):
        order_id = f"ORD-R{round_}"
        make_order(client, staff, artisan, {"P1": 100, "P2": 200}, order_id=order_id)
        barrier = threading.Barrier(2)
        done: list[str] = []
        threads = [
            threading.Thread(target=upload, args=(order_id, p, 10 * round_ + i, barrier, done))
            for i, p in enumerate(("P1", "P2"))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(done) == 2  # both uploads answered 201 (submit checks)
        order = client.get(f"/api/v1/orders/{order_id}", headers=staff).json()
        assert order["status"] == "paid" and order["payout"]["amount_minor"] == 300
    assert _counts(client) == (3, 3, 3)
