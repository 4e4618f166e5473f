"""The review queue: what enters it, its order, decisions (first wins), corrections, metrics."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from order_helpers import OTHER_DESIGN, make_order, piece, submit
from upload_helpers import DESIGN, post

from serving.orders.workflow import Workflow
from serving.review.review_queue import current_priority, priority_base, sort_key, uncertainty


def details(score: float, band: tuple[float, float] = (0.3, 0.7), **extra: Any) -> dict[str, Any]:
    """What the real inspector stores: per-class piece scores and their review bands."""
    return {
        "verdict": {"scores": {"scratch": score}, "defects": ["scratch"], "reasons": []},
        "thresholds": {"bands": {"scratch": list(band)}, "overridden": []},
        **extra,
    }


def queue(client: TestClient, headers: dict[str, str], query: str = "") -> dict[str, Any]:
    r = client.get(f"/api/v1/reviews{query}", headers=headers)
    assert r.status_code == 200, r.json()
    return r.json()


@pytest.fixture
def people(make_user) -> dict[str, Any]:
    artisan, ha = make_user("artisan", "Wanjiru")
    qc, hq = make_user("qc", "Njeri")
    return {"artisan": artisan, "ha": ha, "qc": qc, "hq": hq}


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


def _one_item(client: TestClient, people, inspector, verdict: str = "fail") -> dict[str, Any]:
    make_order(client, people["hq"], people["artisan"], {"P1": 100, "P2": 200})
    inspector.verdict = verdict
    submit(client, people["ha"], "P1")
    (item,) = queue(client, people["hq"])["data"]
    return item


def test_decision_first_wins(client: TestClient, people, inspector, make_user) -> None:
    item = _one_item(client, people, inspector)
    _, other_qc = make_user("qc", "Otieno")
    url = f"/api/v1/reviews/{item['id']}/decision"
    body = {"decision": "reject", "labels": ["scratch", "tarnish", "scratch"], "note": " bad "}
    r = client.post(url, headers=people["hq"], json=body)
    assert r.status_code == 201, r.json()
    d = r.json()
    assert d["review_id"] == item["id"] and d["decision"] == "reject"
    assert d["labels"] == ["scratch", "tarnish"] and d["note"] == "bad"
    assert d["decided_by"] == people["qc"] and d["decided_by_name"] == "Njeri"
    assert d["corrects"] is None and d["decided_at"]
    r = client.post(url, headers=other_qc, json={"decision": "approve"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "already_decided"
    after = client.get(f"/api/v1/reviews/{item['id']}", headers=people["hq"]).json()
    assert after["status"] == "decided" and after["decision"]["id"] == d["id"]
    assert queue(client, people["hq"])["count"] == 0
    assert queue(client, people["hq"], "?status=decided")["count"] == 1
    # The piece is rejected with QC's note; a new photo that passes makes it accepted.
    p1 = piece(client.get("/api/v1/orders/ORD-1", headers=people["ha"]).json(), "P1")
    assert (p1["state"], p1["reason"]) == ("rejected", "rejected by QC: bad")
    inspector.verdict = "pass"
    submit(client, people["ha"], "P1", seed=5)
    p1 = piece(client.get("/api/v1/orders/ORD-1", headers=people["ha"]).json(), "P1")
    assert p1["state"] == "accepted"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"decision": "approve", "labels": ["sparkle"]}, "labels.0"),
        ({"decision": "maybe"}, "decision"),
        ({"labels": []}, "decision"),
        ({"decision": "reject", "note": "x" * 2001}, "note"),
        ({"decision": "reject", "labels": "scratch"}, "labels"),
        ({"decision": "reject", "extra": 1}, "extra"),
    ],
)
def test_bad_decision_bodies_are_422(client: TestClient, people, inspector, body, field) -> None:
    item = _one_item(client, people, inspector)
    r = client.post(f"/api/v1/reviews/{item['id']}/decision", headers=people["hq"], json=body)
    assert r.status_code == 422 and r.json()["error"]["field"] == field, r.json()
    assert queue(client, people["hq"])["data"][0]["status"] == "open"  # nothing written


def test_artisans_cannot_decide(client: TestClient, people, inspector) -> None:
    item = _one_item(client, people, inspector)
    url = f"/api/v1/reviews/{item['id']}/decision"
    assert client.post(url, headers=people["ha"], json={"decision": "approve"}).status_code == 403
    assert client.post(url, json={"decision": "approve"}).status_code == 401


def test_concurrent_decisions_one_wins(client: TestClient, people, inspector, make_user) -> None:
    item = _one_item(client, people, inspector)
    staff = [make_user("qc", f"QC{i}")[1] for i in range(8)]
    barrier = threading.Barrier(len(staff))
    codes: list[int] = []

    def decide(headers: dict[str, str], i: int) -> None:
        c = TestClient(client.app, raise_server_exceptions=False)
        barrier.wait()
        body = {"decision": "approve"} if i % 2 else {"decision": "reject", "labels": ["bent"]}
        r = c.post(f"/api/v1/reviews/{item['id']}/decision", headers=headers, json=body)
        codes.append(r.status_code)

    threads = [threading.Thread(target=decide, args=(h, i)) for i, h in enumerate(staff)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [201] + [409] * (len(staff) - 1)
    history = client.get(f"/api/v1/reviews/{item['id']}", headers=people["hq"]).json()["history"]
    assert len(history) == 1


def test_corrections_link_and_win(client: TestClient, people, inspector) -> None:
    item = _one_item(client, people, inspector)
    base = f"/api/v1/reviews/{item['id']}"
    r = client.post(f"{base}/corrections", headers=people["hq"], json={"decision": "approve"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_decided"
    first = client.post(
        f"{base}/decision", headers=people["hq"], json={"decision": "reject", "labels": ["bent"]}
    ).json()
    fix = client.post(
        f"{base}/corrections", headers=people["hq"], json={"decision": "approve", "labels": []}
    )
    assert fix.status_code == 201 and fix.json()["corrects"] == first["id"]
    after = client.get(base, headers=people["hq"]).json()
    assert after["decision"]["id"] == fix.json()["id"]
    assert [d["decision"] for d in after["history"]] == ["reject", "approve"]
    assert after["history"][0] == first  # the first decision is kept unchanged
    p1 = piece(client.get("/api/v1/orders/ORD-1", headers=people["ha"]).json(), "P1")
    assert p1["state"] == "accepted"


def test_approval_of_the_last_piece_pays(client: TestClient, people, inspector) -> None:
    item = _one_item(client, people, inspector, verdict="review")
    inspector.verdict = "pass"
    submit(client, people["ha"], "P2", seed=3)
    assert client.get("/api/v1/orders/ORD-1", headers=people["ha"]).json()["status"] == "open"
    r = client.post(
        f"/api/v1/reviews/{item['id']}/decision", headers=people["hq"], json={"decision": "approve"}
    )
    assert r.status_code == 201
    order = client.get("/api/v1/orders/ORD-1", headers=people["ha"]).json()
    assert order["status"] == "paid" and order["payout"]["amount_minor"] == 300
    # Paid is final: a later correction to reject changes the labels, not the payout.
    r = client.post(
        f"/api/v1/reviews/{item['id']}/corrections",
        headers=people["hq"],
        json={"decision": "reject", "labels": ["scratch"]},
    )
    assert r.status_code == 201
    order = client.get("/api/v1/orders/ORD-1", headers=people["ha"]).json()
    assert order["status"] == "paid" and piece(order, "P1")["state"] == "accepted"


def test_metrics(client: TestClient, people, inspector, make_client) -> None:
    hq = people["hq"]
    empty = client.get("/api/v1/reviews/metrics", headers=hq).json()
    assert empty == {
        "open": 0,
        "oldest_open_age_s": None,
        "decisions_last_hour": 0,
        "agreement": {"decided": 0, "agreed": 0, "rate": None},
        "audit": {"decided": 0, "escapes": 0, "escape_rate": None},
        "decision_time": {"measured": 0, "median_s": None, "p90_s": None, "window_days": 7},
    }
    audited = make_client(audit_sample_rate=1.0)
    make_order(client, hq, people["artisan"], {f"P{i}": 100 for i in range(5)})
    for i, verdict in enumerate(["fail", "fail", "review", "pass"]):
        inspector.verdict = verdict
        submit(audited, people["ha"], f"P{i}", seed=i)
    items = {i["piece_id"]: i for i in queue(client, hq)["data"]}
    decisions = {"P0": "reject", "P1": "approve", "P2": "approve", "P3": "reject"}
    # Seconds the desk measured per item; P3 was decided without the desk (no time).
    times = {"P0": 4_000, "P1": 10_000, "P2": 31_000, "P3": None}
    for p, d in decisions.items():
        url = f"/api/v1/reviews/{items[p]['id']}/decision"
        body = {
            "decision": d,
            "labels": ["scratch"] if d == "reject" else [],
            "review_ms": times[p],
        }
        assert client.post(url, headers=hq, json=body).status_code == 201
    inspector.verdict = "fail"
    submit(client, people["ha"], "P4", seed=9)
    m = client.get("/api/v1/reviews/metrics", headers=hq).json()
    assert m["open"] == 1 and m["oldest_open_age_s"] >= 0
    assert m["decisions_last_hour"] == 4
    # Sided verdicts: fail/reject agrees, fail/approve does not, pass/reject does not.
    assert m["agreement"] == {"decided": 3, "agreed": 1, "rate": round(1 / 3, 4)}
    assert m["audit"] == {"decided": 1, "escapes": 1, "escape_rate": 1.0}
    # Median of 4, 10, 31 s is 10; the 90th percentile interpolates 10 -> 31 at 0.8: 26.8.
    assert m["decision_time"] == {"measured": 3, "median_s": 10.0, "p90_s": 26.8, "window_days": 7}


def test_reject_needs_a_defect_label_or_a_note(client: TestClient, people, inspector) -> None:
    item = _one_item(client, people, inspector)
    url = f"/api/v1/reviews/{item['id']}/decision"
    for body in ({"decision": "reject"}, {"decision": "reject", "labels": [], "note": "  "}):
        r = client.post(url, headers=people["hq"], json=body)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "label_required"
        assert r.json()["error"]["field"] == "labels"
    assert client.get(f"/api/v1/reviews/{item['id']}", headers=people["hq"]).json()["history"] == []
    # A defect the taxonomy has no label for ("other"): the note says what it is.
    body = {"decision": "reject", "labels": [], "note": "a bead is cracked", "review_ms": 2500}
    r = client.post(url, headers=people["hq"], json=body)
    assert r.status_code == 201 and r.json()["note"] == "a bead is cracked"


def test_decided_item_keeps_its_priority() -> None:
    from serving.db.models import ReviewItem

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    item = ReviewItem(priority_base=1.0, created_at=t0, decided_at=t0 + timedelta(days=2))
    assert current_priority(item, t0 + timedelta(days=30)) == 3.0


def test_newer_photos_of_a_piece_replace_its_open_item(
    client: TestClient, people, inspector, make_user, db_url: str
) -> None:
    ha, hq = people["ha"], people["hq"]
    _, admin = make_user("admin", "Boss")
    first = _one_item(client, people, inspector, verdict="review")
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

    item = _one_item(client, people, inspector, verdict="fail")
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
