"""Issue 28, cases 1-3: releases, QC decisions and uploads of one order decide under the order's
lock. Each test forces one interleaving (a hook pauses one side between its read and its write
while the other side runs), on SQLite and PostgreSQL; the `slow` variants repeat a free-running
burst many times."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient
from order_helpers import make_order, submit
from photo_samples import jpeg
from sqlalchemy import func, select
from upload_helpers import counts, post

from serving.db.models import AuditEntry, Inspection, Payout, ReviewItem

PAUSE_S = 0.4  # how long a paused side waits for the other; the lock makes the other wait


def _setup_approved(client: TestClient, make_user: Any, inspector: Any, order_id: str) -> tuple:
    """A 2-piece order: P1 passed, P2 reviewed and approved by QC; returns (staff, P2's item)."""
    artisan, ha = make_user("artisan", f"A-{order_id}")
    _, staff = make_user("qc", f"Q-{order_id}")
    make_order(client, staff, artisan, {"P1": 500, "P2": 500}, order_id=order_id)
    inspector.verdict = "pass"
    submit(client, ha, "P1", order_id=order_id)
    inspector.verdict = "review"
    body = submit(client, ha, "P2", order_id=order_id, seed=1)
    inspector.verdict = "pass"
    with client.app.state.sessionmaker() as s:  # type: ignore[attr-defined]
        item = s.scalars(select(ReviewItem).where(ReviewItem.inspection_id == body["id"])).one()
    r = client.post(
        f"/api/v1/reviews/{item.id}/decision", headers=staff, json={"decision": "approve"}
    )
    assert r.status_code == 201, r.json()
    return staff, item.id


def _check_consistent(client: TestClient, staff: dict[str, str], order_id: str) -> dict:
    """A paid order has every piece accepted, and no rejection was committed before its payout
    (audit order); an open one has no payout. Returns the order."""
    order = client.get(f"/api/v1/orders/{order_id}", headers=staff).json()
    with client.app.state.sessionmaker() as s:  # type: ignore[attr-defined]
        audit = s.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        items = set(s.scalars(select(ReviewItem.id).where(ReviewItem.order_id == order_id)))
    paid_at = [
        a.id for a in audit if a.action == "payout.create" and a.detail["order_id"] == order_id
    ]
    rejects = [
        a.id
        for a in audit
        if a.action in ("review.decide", "review.correct")
        and a.entity_id in items
        and a.detail.get("decision") == "reject"
    ]
    if order["status"] == "paid":
        assert [p["state"] for p in order["pieces"]] == ["accepted"] * len(order["pieces"]), order
        assert order["paid_minor"] == order["accepted_minor"] == order["total_minor"], order
        assert all(r > paid_at[0] for r in rejects), (paid_at, rejects)
    else:
        assert not paid_at and order["paid_minor"] == 0
    return order


def _manual(make_client: Any) -> TestClient:
    return make_client(auto_payout=False)


@pytest.mark.parametrize("first", ["release", "correction"])
def test_release_and_rejection_interleaved(
    make_client, make_user, inspector, monkeypatch, first: str
) -> None:
    """Case 1. `release`: the release has read the pieces (all accepted) when the rejection
    arrives; `correction`: the rejection is written, not committed, when the release arrives.
    Never paid with a rejected piece; the release's answer matches what it committed."""
    import serving.orders.payouts as payouts
    import serving.orders.workflow as workflow

    client = _manual(make_client)
    staff, item_id = _setup_approved(client, make_user, inspector, "ORD-A")
    app = client.app
    reached, other_done = threading.Event(), threading.Event()
    answers: dict[str, Any] = {}

    def pause_after(real):  # type: ignore[no-untyped-def]
        def wrapped(*a, **k):  # type: ignore[no-untyped-def]
            out = real(*a, **k)
            reached.set()
            other_done.wait(PAUSE_S)  # blocked by the lock when the fix is in: times out
            return out

        return wrapped

    if first == "release":
        monkeypatch.setattr(payouts, "held_pieces", pause_after(payouts.held_pieces))
    else:
        monkeypatch.setattr(workflow, "settle", pause_after(workflow.settle))

    def release() -> None:
        if first == "correction":
            reached.wait(5)
        r = TestClient(app).post("/api/v1/orders/ORD-A/release", headers=staff)
        answers["release"] = (r.status_code, r.json())
        if first == "correction":
            other_done.set()

    def correct() -> None:
        if first == "release":
            reached.wait(5)
        r = TestClient(app).post(
            f"/api/v1/reviews/{item_id}/corrections",
            headers=staff,
            json={"decision": "reject", "labels": ["scratch"]},
        )
        answers["correction"] = r.status_code
        if first == "release":
            other_done.set()

    threads = [threading.Thread(target=f) for f in (release, correct)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    order = _check_consistent(client, staff, "ORD-A")
    code, body = answers["release"]
    assert answers["correction"] == 201
    if first == "release":  # the release held the lock first: it paid
        assert code == 200 and order["status"] == "paid"
    else:  # the rejection held it first: the release saw the rejected piece
        assert code == 409 and body["error"]["code"] == "not_ready" and order["status"] == "open"
    if code == 200:
        assert body["status"] == "paid" and body["payout"]["id"] == order["payout"]["id"]


def _burst(client: TestClient, make_user: Any, inspector: Any, order_id: str, n: int) -> None:
    """Case 2: one rejection and `n` releases at once; every release answers like the state
    it committed: all 200 with the one payout, or all 409 when the rejection came first."""
    staff, item_id = _setup_approved(client, make_user, inspector, order_id)
    app = client.app
    barrier = threading.Barrier(n + 1)
    codes: list[int] = []

    def release() -> None:
        c = TestClient(app)
        barrier.wait()
        codes.append(c.post(f"/api/v1/orders/{order_id}/release", headers=staff).status_code)

    def correct() -> None:
        c = TestClient(app)
        barrier.wait()
        body = {"decision": "reject", "labels": ["scratch"]}
        c.post(f"/api/v1/reviews/{item_id}/corrections", headers=staff, json=body)

    threads = [threading.Thread(target=release) for _ in range(n)]
    threads.append(threading.Thread(target=correct))
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    order = _check_consistent(client, staff, order_id)
    expected = 200 if order["status"] == "paid" else 409
    assert codes == [expected] * n, (codes, order["status"])


def test_release_burst_with_a_rejection(make_client, make_user, inspector) -> None:
    client = _manual(make_client)
    for trial in range(2):
        _burst(client, make_user, inspector, f"ORD-B{trial}", n=6)


@pytest.mark.slow
def test_release_burst_with_a_rejection_many_trials(make_client, make_user, inspector) -> None:
    client = _manual(make_client)
    for trial in range(30):
        _burst(client, make_user, inspector, f"ORD-S{trial}", n=12)


def test_upload_losing_to_a_payout_is_refused_and_leaves_nothing(
    client: TestClient, make_user, inspector, monkeypatch
) -> None:
    """Case 3: a new photo of a 1-piece order passed the early "is it paid?" check and was
    inspected; QC's approval pays the order before the upload records it. The upload gets
    409 `order_paid` and leaves no inspection, review item or photo file."""
    artisan, ha = make_user("artisan")
    _, staff = make_user("qc", "Q")
    make_order(client, staff, artisan, {"P1": 700})
    inspector.verdict = "review"
    first = submit(client, ha, "P1")
    with client.app.state.sessionmaker() as s:  # type: ignore[attr-defined]
        item_id = s.scalars(select(ReviewItem.id)).one()
    before = counts(client)
    real = inspector.inspect
    approved: list[int] = []

    def approve_while_inspecting(*a, **k):  # type: ignore[no-untyped-def]
        r = TestClient(client.app).post(
            f"/api/v1/reviews/{item_id}/decision", headers=staff, json={"decision": "approve"}
        )
        approved.append(r.status_code)
        return real(*a, **k)

    inspector.verdict = "pass"
    monkeypatch.setattr(inspector, "inspect", approve_while_inspecting)
    r = post(client, ha, [("b.jpg", jpeg(330, 250), "image/jpeg")], order_id="ORD-1", piece_id="P1")
    assert approved == [201]
    assert r.status_code == 409 and r.json()["error"]["code"] == "order_paid", r.json()
    assert counts(client) == before  # no inspection, photo row or file added
    with client.app.state.sessionmaker() as s:  # type: ignore[attr-defined]
        assert s.scalar(select(func.count()).select_from(Payout)) == 1
        open_items = s.scalar(
            select(func.count()).select_from(ReviewItem).where(ReviewItem.status == "open")
        )
        assert open_items == 0
        assert s.scalars(select(Inspection.id)).all() == [first["id"]]


def _approve_vs_upload(client: TestClient, make_user: Any, inspector: Any, trial: int) -> None:
    artisan, ha = make_user("artisan", f"A{trial}")
    _, staff = make_user("qc", f"Q{trial}")
    order_id = f"ORD-U{trial}"
    make_order(client, staff, artisan, {"P1": 700}, order_id=order_id)
    inspector.verdict = "review"
    first = submit(client, ha, "P1", order_id=order_id, seed=trial)
    with client.app.state.sessionmaker() as s:  # type: ignore[attr-defined]
        item_id = s.scalars(
            select(ReviewItem.id).where(ReviewItem.inspection_id == first["id"])
        ).one()
    inspector.verdict = "pass"
    barrier = threading.Barrier(2)
    out: dict[str, int] = {}

    def approve() -> None:
        c = TestClient(client.app)
        barrier.wait()
        url = f"/api/v1/reviews/{item_id}/decision"
        out["approve"] = c.post(url, headers=staff, json={"decision": "approve"}).status_code

    def upload() -> None:
        c = TestClient(client.app)
        photo = [("b.jpg", jpeg(400 + trial, 300), "image/jpeg")]
        barrier.wait()
        out["upload"] = post(c, ha, photo, order_id=order_id, piece_id="P1").status_code

    threads = [threading.Thread(target=approve), threading.Thread(target=upload)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    order = client.get(f"/api/v1/orders/{order_id}", headers=staff).json()
    with client.app.state.sessionmaker() as s:  # type: ignore[attr-defined]
        audit = s.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
    paid = [a.id for a in audit if a.action == "payout.create" and a.detail["order_id"] == order_id]
    late = [
        a.id
        for a in audit
        if a.action == "inspection.create" and a.detail.get("order_id") == order_id
    ][1:]
    if paid:  # no inspection of the order recorded after its payout
        assert all(i < paid[0] for i in late), (paid, late)
    if out["upload"] == 201:  # the upload came first: it replaced the item being approved
        assert out["approve"] == 409 or order["status"] == "paid"
    else:
        assert out["upload"] == 409 and order["status"] == "paid"


@pytest.mark.slow
def test_approval_racing_an_upload_many_trials(client: TestClient, make_user, inspector) -> None:
    for trial in range(20):
        _approve_vs_upload(client, make_user, inspector, trial)
