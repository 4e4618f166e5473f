"""The audit log: every state change leaves who, what and when; the API only reads it."""

from __future__ import annotations

from fastapi.testclient import TestClient
from order_helpers import make_order, submit


def test_a_whole_flow_is_audited(client: TestClient, make_user, inspector) -> None:
    artisan, ha = make_user("artisan", "Wanjiru")
    qc, hq = make_user("qc", "Njeri")
    _, admin = make_user("admin", "Boss")
    make_order(client, hq, artisan, {"P1": 100})
    inspector.verdict = "fail"
    insp = submit(client, ha, "P1")
    (item,) = client.get("/api/v1/reviews", headers=hq).json()["data"]
    r = client.post(
        f"/api/v1/reviews/{item['id']}/decision", headers=hq, json={"decision": "approve"}
    )
    assert r.status_code == 201
    # A refused request changes nothing, so it writes nothing either.
    assert client.post("/api/v1/orders", headers=hq, json={"id": "ORD-1"}).status_code == 422

    log = client.get("/api/v1/audit?limit=500", headers=admin).json()
    entries = list(reversed(log["data"]))  # oldest first
    assert log["count"] == len(entries)
    actions = [(e["action"], e["actor_id"]) for e in entries]
    assert actions == [
        ("user.create", None),
        ("user.create", None),
        ("user.create", None),
        ("order.create", qc),
        ("inspection.create", artisan),
        ("review.enqueue", None),
        ("review.decide", qc),
        ("piece.state", qc),  # pending -> accepted; a fail kept it pending: no entry then
        ("payout.create", None),
    ]
    by_action = {e["action"]: e for e in entries}
    assert by_action["inspection.create"]["entity_id"] == insp["id"]
    assert by_action["inspection.create"]["detail"]["verdict"] == "fail"
    assert by_action["review.decide"]["detail"]["decision"] == "approve"
    assert by_action["payout.create"]["detail"]["amount_minor"] == 100
    assert all(e["at"] for e in entries)

    order_log = client.get("/api/v1/audit?entity_type=order&entity_id=ORD-1", headers=admin).json()
    assert {e["action"] for e in order_log["data"]} == {"order.create", "piece.state"}
    assert client.get(f"/api/v1/audit?actor_id={qc}", headers=admin).json()["count"] == 3
    page = client.get("/api/v1/audit?action=user.create&limit=2&offset=2", headers=admin).json()
    assert page["count"] == 3 and len(page["data"]) == 1
    future = client.get("/api/v1/audit?since=2999-01-01T00:00:00Z", headers=admin).json()
    assert future["count"] == 0


def test_piece_state_entries_only_when_the_state_changes(
    client: TestClient, make_user, inspector
) -> None:
    artisan, ha = make_user("artisan")
    _, hq = make_user("qc", "Q")
    _, admin = make_user("admin", "Boss")
    make_order(client, hq, artisan, {"P1": 100, "P2": 100})
    inspector.verdict = "retake"
    submit(client, ha, "P1")  # pending -> pending: the reason changes, the state does not
    inspector.verdict = "pass"
    submit(client, ha, "P1", seed=1)  # pending -> accepted
    entries = client.get("/api/v1/audit?action=piece.state", headers=admin).json()["data"]
    assert [(e["detail"]["before"], e["detail"]["after"]) for e in entries] == [
        ("pending", "accepted")
    ]


def test_only_admins_read_the_log(client: TestClient, make_user) -> None:
    _, ha = make_user("artisan")
    _, hq = make_user("qc", "Q")
    assert client.get("/api/v1/audit").status_code == 401
    assert client.get("/api/v1/audit", headers=ha).status_code == 403
    assert client.get("/api/v1/audit", headers=hq).status_code == 403
    _, admin = make_user("admin", "Boss")
    assert client.get("/api/v1/audit?limit=0", headers=admin).status_code == 422
    assert client.get("/api/v1/audit?since=yesterday", headers=admin).status_code == 422


def test_no_route_writes_the_log(client: TestClient, make_user) -> None:
    _, admin = make_user("admin", "Boss")
    for method in ("put", "patch", "delete", "post"):
        r = getattr(client, method)("/api/v1/audit", headers=admin)
        assert r.status_code == 405, method
    paths = client.get("/openapi.json").json()["paths"]
    assert {p: set(ops) for p, ops in paths.items() if p.startswith("/api/v1/audit")} == {
        "/api/v1/audit": {"get"}
    }
