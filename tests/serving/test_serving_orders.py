"""Orders: creation and its checks, who sees what, piece states from inspections."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from order_helpers import OTHER_DESIGN, make_order, piece, submit
from upload_helpers import DESIGN, post


def test_create_order(client: TestClient, make_user) -> None:
    artisan, _ = make_user("artisan", "Wanjiru")
    _, staff = make_user("qc", "Q")
    order = make_order(client, staff, artisan, {"P1": 45000, "P2": 30000})
    assert order["id"] == "ORD-1" and order["artisan_id"] == artisan
    assert order["artisan_name"] == "Wanjiru" and order["currency"] == "KES"
    assert order["status"] == "open" and order["payout"] is None and order["paid_minor"] == 0
    assert (order["total_minor"], order["accepted_minor"], order["pending_minor"]) == (
        75000,
        0,
        75000,
    )
    assert [p["piece_id"] for p in order["pieces"]] == ["P1", "P2"]
    p1 = piece(order, "P1")
    assert p1["design_id"] == DESIGN and p1["design_name"]
    assert p1["state"] == "pending" and p1["reason"] == "no photo submitted yet"
    assert p1["latest_inspection_id"] is None and p1["latest_verdict"] is None
    # Without a client id the service names the order.
    other = make_order(client, staff, artisan, {"X": 1}, order_id=None)
    assert other["id"].startswith("ORD-") and other["id"] != "ORD-1"


def _body(artisan: int, **kw: object) -> dict[str, object]:
    return {
        "artisan_id": artisan,
        "pieces": [{"piece_id": "P1", "design_id": DESIGN, "payout_minor": 100}],
        **kw,
    }


def test_create_order_refuses_bad_bodies(client: TestClient, make_user) -> None:
    artisan, _ = make_user("artisan")
    qc_id, staff = make_user("qc", "Q")
    piece_ = {"piece_id": "P1", "design_id": DESIGN, "payout_minor": 100}
    cases = [
        (_body(artisan, pieces=[{**piece_, "design_id": "NOPE"}]), "pieces.0.design_id"),
        (_body(qc_id), "artisan_id"),
        (_body(9999), "artisan_id"),
        (_body(artisan, pieces=[piece_, {**piece_, "payout_minor": 5}]), "pieces.1.piece_id"),
        (_body(artisan, pieces=[]), "pieces"),
        (_body(artisan, currency="kes"), "currency"),
        (_body(artisan, id="bad id"), "id"),
        (_body(artisan, pieces=[{**piece_, "payout_minor": 0}]), "pieces.0.payout_minor"),
        (_body(artisan, pieces=[{**piece_, "payout_minor": 1.5}]), "pieces.0.payout_minor"),
        (_body(artisan, pieces=[{**piece_, "piece_id": "a/b"}]), "pieces.0.piece_id"),
        (_body(artisan, colour="red"), "colour"),
    ]
    for body, field in cases:
        r = client.post("/api/v1/orders", headers=staff, json=body)
        assert r.status_code == 422, (body, r.json())
        assert r.json()["error"]["field"] == field, (body, r.json())
    r = client.post("/api/v1/orders", headers=staff, content=b"{not json")
    assert r.status_code == 422
    assert client.get("/api/v1/orders", headers=staff).json()["count"] == 0  # nothing written


def test_duplicate_order_id_is_409(client: TestClient, make_user) -> None:
    artisan, _ = make_user("artisan")
    _, staff = make_user("admin", "A")
    make_order(client, staff, artisan)
    r = client.post("/api/v1/orders", headers=staff, json=_body(artisan, id="ORD-1"))
    assert r.status_code == 409 and r.json()["error"]["code"] == "order_exists"


def test_who_may_create_and_read(client: TestClient, make_user) -> None:
    a1, h1 = make_user("artisan", "A1")
    a2, _ = make_user("artisan", "A2")
    _, staff = make_user("qc", "Q")
    assert client.post("/api/v1/orders", json=_body(a1)).status_code == 401
    r = client.post("/api/v1/orders", headers=h1, json=_body(a1))
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    make_order(client, staff, a1, order_id="ORD-A1")
    make_order(client, staff, a2, order_id="ORD-A2")

    assert client.get("/api/v1/orders/ORD-A1", headers=h1).status_code == 200
    r = client.get("/api/v1/orders/ORD-A2", headers=h1)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert client.get("/api/v1/orders/NOPE", headers=staff).status_code == 404
    mine = client.get("/api/v1/orders", headers=h1).json()
    assert mine["count"] == 1 and [o["id"] for o in mine["data"]] == ["ORD-A1"]
    assert client.get(f"/api/v1/orders?artisan_id={a2}", headers=h1).status_code == 403
    everyone = client.get("/api/v1/orders", headers=staff).json()
    assert everyone["count"] == 2
    only_a2 = client.get(f"/api/v1/orders?artisan_id={a2}", headers=staff).json()
    assert [o["id"] for o in only_a2["data"]] == ["ORD-A2"]
    page = client.get("/api/v1/orders?limit=1&offset=1", headers=staff).json()
    assert page["count"] == 2 and len(page["data"]) == 1
    assert client.get("/api/v1/orders?status=closed", headers=staff).status_code == 422
    assert client.get("/api/v1/orders?limit=0", headers=staff).status_code == 422


def test_piece_states_follow_inspections(client: TestClient, make_user, inspector) -> None:
    artisan, ha = make_user("artisan")
    _, staff = make_user("qc", "Q")
    make_order(client, staff, artisan, {"P1": 100, "P2": 200, "P3": 300})
    inspector.verdict = "pass"
    insp = submit(client, ha, "P1")
    inspector.verdict = "fail"
    submit(client, ha, "P2", seed=1)
    inspector.verdict = "retake"
    inspector.details = {
        "verdict": {"reasons": [{"code": "blur", "text": "The photo is blurred: hold still"}]}
    }
    submit(client, ha, "P3", seed=2)
    order = client.get("/api/v1/orders/ORD-1", headers=ha).json()
    p1, p2, p3 = (piece(order, p) for p in ("P1", "P2", "P3"))
    assert (p1["state"], p1["reason"], p1["latest_verdict"]) == ("accepted", None, "pass")
    assert p1["latest_inspection_id"] == insp["id"]
    assert (p2["state"], p2["reason"]) == ("pending", "waiting for QC review")
    assert p3["state"] == "pending"
    assert p3["reason"] == "retake needed: The photo is blurred: hold still"
    assert (order["accepted_minor"], order["pending_minor"]) == (100, 500)
    assert order["status"] == "open"

    # A retake after a pass does not count against the artisan: the pass still decides.
    submit(client, ha, "P1", seed=3)
    p1 = piece(client.get("/api/v1/orders/ORD-1", headers=ha).json(), "P1")
    assert p1["state"] == "accepted" and p1["latest_verdict"] == "retake"
    # A later fail does: the latest judged inspection decides.
    inspector.verdict = "review"
    submit(client, ha, "P1", seed=4)
    p1 = piece(client.get("/api/v1/orders/ORD-1", headers=ha).json(), "P1")
    assert (p1["state"], p1["reason"]) == ("pending", "waiting for QC review")


def test_piece_without_a_model_waits_for_inspection(
    client: TestClient, make_user, inspector
) -> None:
    artisan, ha = make_user("artisan")
    _, staff = make_user("qc", "Q")
    make_order(client, staff, artisan, {"P1": 100})
    client.app.state.inspector_status = type(  # type: ignore[attr-defined]
        "S", (), {"inspector": None, "reason": "no model"}
    )()
    body = submit(client, ha, "P1")
    assert body["status"] == "received"
    p1 = piece(client.get("/api/v1/orders/ORD-1", headers=ha).json(), "P1")
    assert p1["state"] == "pending" and "waiting for inspection" in p1["reason"]


@pytest.mark.parametrize(
    ("fields", "status", "code", "field"),
    [
        ({"order_id": "NOPE"}, 422, "unknown_order", "order_id"),
        ({"order_id": "ORD-OTHER"}, 422, "unknown_order", "order_id"),
        ({"piece_id": "P9"}, 422, "unknown_piece", "piece_id"),
        ({"design_id": OTHER_DESIGN}, 422, "wrong_design", "design_id"),
    ],
)
def test_inspection_must_match_its_order(
    client: TestClient, make_user, inspector, fields, status, code, field
) -> None:
    artisan, ha = make_user("artisan", "A1")
    other, _ = make_user("artisan", "A2")
    _, staff = make_user("qc", "Q")
    make_order(client, staff, artisan, {"P1": 100})
    make_order(client, staff, other, {"P1": 100}, order_id="ORD-OTHER")
    r = post(client, ha, **{"order_id": "ORD-1", "piece_id": "P1", **fields})
    assert r.status_code == status, r.json()
    assert r.json()["error"]["code"] == code and r.json()["error"]["field"] == field
    assert inspector.calls == []  # refused before any photo was decoded or inspected


def test_admin_may_submit_for_an_artisans_order(client: TestClient, make_user) -> None:
    artisan, _ = make_user("artisan")
    _, admin = make_user("admin", "Boss")
    make_order(client, admin, artisan, {"P1": 100})
    submit(client, admin, "P1")
    order = client.get("/api/v1/orders/ORD-1", headers=admin).json()
    assert order["status"] == "paid"
