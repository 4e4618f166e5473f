"""The review queue: what enters it, its order and filters, who sees it, audit samples.

Decisions, corrections and metrics: test_serving_reviews_decisions.py; newer photos replacing
an open item: test_serving_reviews_replaced.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from order_helpers import OTHER_DESIGN, make_order, submit
from review_helpers import details, queue
from upload_helpers import DESIGN, post

from serving.orders.workflow import Workflow
from serving.review.review_queue import current_priority, priority_base, sort_key, uncertainty


def test_fail_and_review_enter_the_queue_pass_and_retake_do_not(
    client: TestClient, people, inspector
) -> None:
    ha, hq = people["ha"], people["hq"]
    make_order(client, hq, people["artisan"], {"P1": 100, "P2": 200, "P3": 300, "P4": 400})
    for i, (p, verdict) in enumerate(
        [("P1", "fail"), ("P2", "review"), ("P3", "pass"), ("P4", "retake")]
    ):
        inspector.verdict = verdict
        submit(client, ha, p, seed=i)
    body = queue(client, hq)
    assert body["count"] == 2
    assert sorted(i["reason"] for i in body["data"]) == ["fail", "review"]
    item = next(i for i in body["data"] if i["reason"] == "fail")
    assert item["status"] == "open" and item["decision"] is None and item["history"] == []
    assert (item["order_id"], item["piece_id"], item["design_id"]) == ("ORD-1", "P1", DESIGN)
    assert item["artisan_id"] == people["artisan"] and item["artisan_name"] == "Wanjiru"
    assert item["payout_minor"] == 100
    insp = item["inspection"]
    assert insp["verdict"] == "fail" and insp["photos"][0]["url"].endswith("/photos/0")
    assert client.get(insp["photos"][0]["url"], headers=hq).status_code == 200
    assert client.get(f"/api/v1/reviews/{item['id']}", headers=hq).json()["id"] == item["id"]


def test_inspection_outside_an_order_is_reviewed_too(client: TestClient, people, inspector):
    inspector.verdict = "fail"
    inspector.details = details(0.9)
    assert post(client, people["ha"]).status_code == 201
    (item,) = queue(client, people["hq"])["data"]
    assert item["order_id"] is None and item["payout_minor"] is None
    assert item["model_labels"] == ["scratch"]


def test_audit_sample_of_passes(make_client, people, inspector) -> None:
    everything = make_client(audit_sample_rate=1.0)
    make_order(everything, people["hq"], people["artisan"], {"P1": 100})
    submit(everything, people["ha"], "P1")
    (item,) = queue(everything, people["hq"])["data"]
    assert item["reason"] == "audit" and item["inspection"]["verdict"] == "pass"
    # The audited pass still counts: the piece is accepted and the order paid at once.
    order = everything.get("/api/v1/orders/ORD-1", headers=people["ha"]).json()
    assert order["status"] == "paid"


def test_audit_sampler_is_seeded_and_near_its_rate() -> None:
    a, b = Workflow(0.2, seed=7), Workflow(0.2, seed=7)
    seq_a = [a.sample_audit() for _ in range(2000)]
    assert seq_a == [b.sample_audit() for _ in range(2000)]
    assert seq_a != [Workflow(0.2, seed=8).sample_audit() for _ in range(2000)]
    assert 300 <= sum(seq_a) <= 500  # 400 expected; a seeded draw, so this never flakes
    assert not any(Workflow(0.0, seed=1).sample_audit() for _ in range(1000))
    assert all(Workflow(1.0, seed=1).sample_audit() for _ in range(1000))


def test_priority_formula() -> None:
    assert uncertainty(details(0.3)) == 1.0  # on a threshold
    assert uncertainty(details(0.5)) == pytest.approx(0.2)  # 0.2 from both ends
    assert uncertainty(details(0.99)) == 0.0  # far past t_high: a sure fail
    assert uncertainty({}) == 0.5  # nothing scored
    assert priority_base(details(0.3), None) == 2.0
    assert priority_base(details(0.99), 10_000_000) == pytest.approx(1.0)  # 100 000 KES
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    # Age: a day-old sure item ties with a fresh item half a point more uncertain.
    assert sort_key(1.0, t0) == pytest.approx(sort_key(2.0, t0 + timedelta(days=1)))
    assert sort_key(1.0, t0) > sort_key(1.0, t0 + timedelta(hours=1))


def test_queue_is_ordered_by_priority_and_filtered(
    client: TestClient, make_user, people, inspector
) -> None:
    hq = people["hq"]
    other, ho = make_user("artisan", "Akinyi")
    make_order(client, hq, people["artisan"], {"P1": 100, "P2": 100})
    make_order(client, hq, other, {"Q1": 100}, order_id="ORD-2", design=OTHER_DESIGN)
    make_order(client, hq, people["artisan"], {"P3": 10_000_000}, order_id="ORD-3")
    inspector.verdict = "fail"
    # P1 a sure fail in a small order, P2 just past t_high (uncertain), P3 sure but valuable.
    cases = [("P1", 0.99, "ORD-1"), ("P2", 0.71, "ORD-1"), ("P3", 0.99, "ORD-3")]
    for i, (p, score, order_id) in enumerate(cases):
        inspector.details = details(score)
        submit(client, people["ha"], p, order_id=order_id, seed=i)
    inspector.verdict = "review"
    inspector.details = details(0.5)
    submit(client, ho, "Q1", order_id="ORD-2", design=OTHER_DESIGN, seed=9)
    data = queue(client, hq)["data"]
    assert [i["piece_id"] for i in data] == ["P2", "P3", "Q1", "P1"]
    priorities = [i["priority"] for i in data]
    assert priorities == sorted(priorities, reverse=True)
    assert [i["piece_id"] for i in queue(client, hq, f"?design_id={OTHER_DESIGN}")["data"]] == [
        "Q1"
    ]
    assert queue(client, hq, f"?artisan_id={other}")["count"] == 1
    assert queue(client, hq, "?reason=review")["count"] == 1
    assert queue(client, hq, "?reason=audit")["count"] == 0
    page = queue(client, hq, "?limit=2&offset=1")
    assert page["count"] == 4 and [i["piece_id"] for i in page["data"]] == ["P3", "Q1"]
    assert queue(client, hq, "?status=decided")["count"] == 0
    assert client.get("/api/v1/reviews?reason=maybe", headers=hq).status_code == 422
    assert client.get("/api/v1/reviews?status=all", headers=hq).status_code == 422


def test_only_staff_see_the_queue(client: TestClient, people, make_user) -> None:
    _, admin = make_user("admin", "Boss")
    assert client.get("/api/v1/reviews").status_code == 401
    r = client.get("/api/v1/reviews", headers=people["ha"])
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert client.get("/api/v1/reviews/metrics", headers=people["ha"]).status_code == 403
    assert client.get("/api/v1/reviews", headers=admin).status_code == 200
    assert client.get("/api/v1/reviews/nope", headers=admin).status_code == 404
    r = client.post("/api/v1/reviews/nope/decision", headers=admin, json={"decision": "approve"})
    assert r.status_code == 404


def test_decided_item_keeps_its_priority() -> None:
    from serving.db.models import ReviewItem

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    item = ReviewItem(priority_base=1.0, created_at=t0, decided_at=t0 + timedelta(days=2))
    assert current_priority(item, t0 + timedelta(days=30)) == 3.0
