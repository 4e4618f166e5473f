"""Newer photos of a piece replace its open review item: what replaces, what does not, and a
decision on a replaced item is refused."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from order_helpers import make_order, piece, submit
from review_helpers import one_item, queue


def test_newer_photos_of_a_piece_replace_its_open_item(
    client: TestClient, people, inspector, make_user, db_url: str
) -> None:
    ha, hq = people["ha"], people["hq"]
    _, admin = make_user("admin", "Boss")
    first = one_item(client, people, inspector, verdict="review")
    # A retake is no judgement: the item still holds the piece.
    inspector.verdict = "retake"
    submit(client, ha, "P1", seed=1)
    assert [i["id"] for i in queue(client, hq)["data"]] == [first["id"]]
    # Another piece's photos replace nothing.
    inspector.verdict = "fail"
    submit(client, ha, "P2", seed=2)
    assert queue(client, hq)["count"] == 2
    # New photos of P1 that the model is unsure of again: one open item, the new one.
    inspector.verdict = "review"
    newer = submit(client, ha, "P1", seed=3)
    p1_items = [i for i in queue(client, hq)["data"] if i["piece_id"] == "P1"]
    assert [i["inspection"]["id"] for i in p1_items] == [newer["id"]]
    (gone,) = queue(client, hq, "?status=replaced")["data"]
    assert gone["id"] == first["id"] and gone["decision"] is None
    url = f"/api/v1/reviews/{first['id']}/decision"
    r = client.post(url, headers=hq, json={"decision": "reject", "labels": ["bent"]})
    assert r.status_code == 409 and r.json()["error"]["code"] == "replaced", r.json()
    assert client.get(f"/api/v1/reviews/{first['id']}", headers=hq).json()["history"] == []
    log = client.get("/api/v1/audit?entity_type=review", headers=admin).json()["data"]
    (entry,) = [e for e in log if e["action"] == "review.replace"]
    assert entry["entity_id"] == first["id"] and entry["detail"]["replaced_by"] == newer["id"]
    # Photos that pass replace the last open item and accept the piece.
    inspector.verdict = "pass"
    submit(client, ha, "P1", seed=4)
    assert [i["piece_id"] for i in queue(client, hq)["data"]] == ["P2"]
    p1 = piece(client.get("/api/v1/orders/ORD-1", headers=ha).json(), "P1")
    assert p1["state"] == "accepted"
    assert queue_metrics_open(client, hq) == 1


def queue_metrics_open(client: TestClient, hq: dict[str, str]) -> int:
    r = client.get("/api/v1/reviews/metrics", headers=hq)
    assert r.status_code == 200
    return int(r.json()["open"])


def test_a_decision_read_before_the_replacement_is_refused(
    client: TestClient, people, inspector, db_url: str
) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from serving.core.errors import ApiError
    from serving.db.models import ReviewItem, User
    from serving.review.review_queue import add_decision

    item = one_item(client, people, inspector, verdict="fail")
    engine = create_engine(db_url)
    try:
        with Session(engine) as stale:
            row = stale.get(ReviewItem, item["id"])
            staff = stale.get(User, people["qc"])
            assert row is not None and staff is not None and row.status == "open"
            inspector.verdict = "pass"  # committed by the service meanwhile
            submit(client, people["ha"], "P1", seed=7)
            with pytest.raises(ApiError) as err:
                add_decision(
                    stale, row, actor=staff, decision="reject", labels=[], note=None,
                    correction=False,
                )  # fmt: skip
            assert err.value.status == 409 and err.value.code == "replaced"
    finally:
        engine.dispose()
    after = client.get(f"/api/v1/reviews/{item['id']}", headers=people["hq"]).json()
    assert after["status"] == "replaced" and after["history"] == []


def test_audit_samples_are_not_replaced(make_client, people, inspector) -> None:
    everything = make_client(audit_sample_rate=1.0)
    make_order(everything, people["hq"], people["artisan"], {"P1": 100, "P2": 100})
    submit(everything, people["ha"], "P1")
    inspector.verdict = "review"
    submit(everything, people["ha"], "P1", seed=1)
    reasons = sorted(i["reason"] for i in queue(everything, people["hq"])["data"])
    assert reasons == ["audit", "review"]
