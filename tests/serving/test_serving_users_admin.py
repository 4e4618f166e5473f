"""User management is admin-only; every forbidden action of the workflow is 403 and changes
nothing (issue: artisans cannot decide reviews, create orders, release payouts or see other
artisans' data; QC cannot pay an order with unaccepted pieces; only admin manages users)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from order_helpers import make_order, submit
from sqlalchemy import func, select

from serving.db.models import AuditEntry, Order, Payout, ReviewDecision, ReviewItem, User


def _snapshot(client: TestClient) -> dict[str, Any]:
    """Row counts of everything a forbidden action could have changed, and the users' states."""
    with client.app.state.sessionmaker() as s:  # type: ignore[attr-defined]
        counts: dict[str, Any] = {
            m.__name__: s.scalar(select(func.count()).select_from(m))
            for m in (User, Order, Payout, ReviewDecision, AuditEntry)
        }
        counts["active"] = sorted((u.id, u.active) for u in s.scalars(select(User)))
        return counts


def test_admin_creates_lists_and_deactivates_users(client: TestClient, make_user) -> None:
    _, admin = make_user("admin", "Amani")
    r = client.post("/api/v1/users", headers=admin, json={"name": "Wanjiku", "role": "artisan"})
    assert r.status_code == 201, r.json()
    new = r.json()
    assert new["role"] == "artisan" and new["active"] and new["token"].startswith("kito_")
    token = {"Authorization": f"Bearer {new['token']}"}
    assert client.get("/api/v1/users/me", headers=token).json()["name"] == "Wanjiku"
    listed = client.get("/api/v1/users?role=artisan", headers=admin).json()
    assert listed["count"] == 1 and "token" not in listed["data"][0]
    r = client.patch(f"/api/v1/users/{new['id']}", headers=admin, json={"active": False})
    assert r.status_code == 200 and r.json()["active"] is False
    assert client.get("/api/v1/users/me", headers=token).status_code == 401  # at once
    log = client.get("/api/v1/audit?entity_type=user", headers=admin).json()["data"]
    actions = [a["action"] for a in log]
    assert "user.create" in actions and "user.deactivate" in actions


def test_user_admin_refuses_bad_input(client: TestClient, make_user) -> None:
    admin_id, admin = make_user("admin", "Amani")
    bodies = [
        {"name": "X", "role": "boss"},
        {"name": "", "role": "qc"},
        {"name": "   ", "role": "qc"},
        {"name": "X", "role": "qc", "token": "mine"},
    ]
    for body in bodies:
        r = client.post("/api/v1/users", headers=admin, json=body)
        assert r.status_code == 422, (body, r.json())
    r = client.patch("/api/v1/users/999", headers=admin, json={"active": False})
    assert r.status_code == 404
    r = client.patch(f"/api/v1/users/{admin_id}", headers=admin, json={"active": False})
    assert r.status_code == 409 and r.json()["error"]["code"] == "self_deactivation"


def test_every_forbidden_action_is_403_and_changes_nothing(
    client: TestClient, make_user, inspector
) -> None:
    artisan, ha = make_user("artisan", "Wanjiru")
    _, ho = make_user("artisan", "Akinyi")
    qc_id, hq = make_user("qc", "Njeri")
    make_order(client, hq, artisan, {"Q1": 100, "Q2": 100}, order_id="ORD-2")
    inspector.verdict = "fail"
    submit(client, ha, "Q1", order_id="ORD-2")  # a failed piece: one item in the queue
    with client.app.state.sessionmaker() as s:  # type: ignore[attr-defined]
        review_id = s.scalar(select(ReviewItem.id))
    assert review_id is not None
    piece = [{"piece_id": "Z", "design_id": "KQ-HOOP-BR-30", "payout_minor": 1}]
    decision = {"decision": "approve", "labels": []}
    forbidden = [
        ("artisan creates an order", "POST", "/api/v1/orders", ha,
         {"artisan_id": artisan, "pieces": piece}),
        ("artisan releases a payout", "POST", "/api/v1/orders/ORD-2/release", ha, None),
        ("artisan reads the review queue", "GET", "/api/v1/reviews", ha, None),
        ("artisan decides a review", "POST", f"/api/v1/reviews/{review_id}/decision", ha,
         decision),
        ("artisan corrects a review", "POST", f"/api/v1/reviews/{review_id}/corrections", ha,
         decision),
        ("artisan creates a user", "POST", "/api/v1/users", ha, {"name": "X", "role": "admin"}),
        ("qc creates a user", "POST", "/api/v1/users", hq, {"name": "X", "role": "admin"}),
        ("qc lists users", "GET", "/api/v1/users", hq, None),
        ("qc deactivates a user", "PATCH", f"/api/v1/users/{artisan}", hq, {"active": False}),
        ("artisan deactivates a user", "PATCH", f"/api/v1/users/{qc_id}", ha, {"active": False}),
        ("artisan reads the audit log", "GET", "/api/v1/audit", ha, None),
        ("another artisan lists someone's orders", "GET",
         f"/api/v1/orders?artisan_id={artisan}", ho, None),
    ]  # fmt: skip
    before = _snapshot(client)
    for what, method, url, headers, body in forbidden:
        r = client.request(method, url, headers=headers, json=body)
        assert r.status_code == 403, (what, r.status_code, r.json())
        assert r.json()["error"]["code"] == "forbidden", what
    # Another artisan's order is not even visible (404, not 403: its existence is not leaked).
    assert client.get("/api/v1/orders/ORD-2", headers=ho).status_code == 404
    # QC cannot pay an order whose pieces are not all accepted.
    r = client.post("/api/v1/orders/ORD-2/release", headers=hq)
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_ready"
    assert _snapshot(client) == before
