"""The authorisation matrix: every operation of the OpenAPI x {no token, bad token, artisan,
other artisan, qc, admin}, with the expected status of each as data. A new operation that is
not in the table fails the test; so does any cell that answers otherwise.

"artisan" owns every resource the requests name (inspection, photo, order with its payout);
"other" is a second artisan, who must learn nothing about them (404, as for a missing one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from order_helpers import make_order, submit
from photo_samples import jpeg
from upload_helpers import DESIGN, post

WHO = ("none", "bad", "artisan", "other", "qc", "admin")


def row(none: int, bad: int, artisan: int, other: int, qc: int, admin: int) -> dict[str, int]:
    return dict(zip(WHO, (none, bad, artisan, other, qc, admin), strict=True))


PUBLIC = row(200, 200, 200, 200, 200, 200)
ANY_USER = row(401, 401, 200, 200, 200, 200)
OWNER_OR_STAFF = row(401, 401, 200, 404, 200, 200)  # another artisan's: as if it did not exist
STAFF = row(401, 401, 403, 403, 200, 200)


def admin_only(admin: int) -> dict[str, int]:
    return row(401, 401, 403, 403, 403, admin)


ROLLBACK_NOTHING = 409  # no previous champion to go back to
SHADOW_STOP = 204  # stopping a shadow when none runs is a no-op

EXPECTED: dict[tuple[str, str], dict[str, int]] = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/api/v1/users/me"): ANY_USER,
    ("GET", "/api/v1/designs"): ANY_USER,
    ("GET", "/api/v1/designs/{design_id}"): ANY_USER,
    # Uploads name the artisan's own order: the other artisan is told there is no such order.
    ("POST", "/api/v1/inspections"): row(401, 401, 201, 422, 403, 201),
    ("GET", "/api/v1/inspections"): ANY_USER,  # artisans: their own only (checked below)
    ("GET", "/api/v1/inspections/{inspection_id}"): OWNER_OR_STAFF,
    ("GET", "/api/v1/inspections/{inspection_id}/photos/{position}"): OWNER_OR_STAFF,
    ("GET", "/api/v1/inspections/{inspection_id}/photos/{position}/heatmap"): OWNER_OR_STAFF,
    ("POST", "/api/v1/orders"): row(401, 401, 403, 403, 201, 201),
    ("GET", "/api/v1/orders"): ANY_USER,  # artisans: their own only (checked below)
    ("GET", "/api/v1/orders/{order_id}"): OWNER_OR_STAFF,
    ("POST", "/api/v1/orders/{order_id}/release"): STAFF,
    ("GET", "/api/v1/reviews"): STAFF,
    ("GET", "/api/v1/reviews/metrics"): STAFF,
    ("GET", "/api/v1/reviews/{review_id}"): STAFF,
    ("POST", "/api/v1/reviews/{review_id}/decision"): row(401, 401, 403, 403, 201, 201),
    ("POST", "/api/v1/reviews/{review_id}/corrections"): row(401, 401, 403, 403, 201, 201),
    ("GET", "/api/v1/audit"): row(401, 401, 403, 403, 403, 200),
    ("GET", "/api/v1/taxonomy"): ANY_USER,
    ("POST", "/api/v1/users"): admin_only(201),
    ("GET", "/api/v1/users"): admin_only(200),
    ("PATCH", "/api/v1/users/{user_id}"): admin_only(200),
    ("GET", "/api/v1/users/{user_id}/photo-matches"): admin_only(200),
    # The model registry (the matrix's app has none: the admin's answers are the registry's).
    ("GET", "/api/v1/models"): admin_only(200),
    ("GET", "/api/v1/models/shadow-report"): admin_only(404),
    ("POST", "/api/v1/models/rollback"): admin_only(ROLLBACK_NOTHING),
    ("DELETE", "/api/v1/models/shadow"): admin_only(SHADOW_STOP),
    ("GET", "/api/v1/models/{version}"): admin_only(404),
    ("POST", "/api/v1/models/{version}/promote"): admin_only(404),
    ("POST", "/api/v1/models/{version}/shadow"): admin_only(404),
}

HEATMAP = {
    "class": "scratch",
    "crop_box": [0, 0, 200, 200],
    "image_size": [320, 240],
    "grid": [[0.0, 0.5], [0.5, 1.0]],
}


@dataclass
class World:
    headers: dict[str, dict[str, str]]
    ids: dict[str, int]
    inspection: str  # the artisan's, with a photo and a heatmap
    order: str  # the artisan's, open, piece U1 takes uploads
    paid_order: str  # the artisan's, paid
    review: str  # an open review item of the artisan's
    open_reviews: dict[str, str]  # identity -> an open review item that identity decides
    decided_reviews: dict[str, str]  # identity -> a decided review item it corrects


@pytest.fixture
def world(make_client, make_user, inspector) -> tuple[TestClient, World]:
    # Bad tokens are part of the matrix; the guessing limit has its own test.
    client: TestClient = make_client(auth_failures_per_minute=10_000)
    ids, headers = {}, {"none": {}, "bad": {"Authorization": "Bearer kito_not-a-real-token"}}
    for who, role in (
        ("artisan", "artisan"),
        ("other", "artisan"),
        ("qc", "qc"),
        ("admin", "admin"),
    ):
        ids[who], headers[who] = make_user(role, who.title())
    staff, owner = headers["qc"], headers["artisan"]
    make_order(client, staff, ids["artisan"], {"P1": 500}, order_id="ORD-PAID")
    submit(client, owner, "P1", order_id="ORD-PAID")
    make_order(client, staff, ids["artisan"], {"U1": 700}, order_id="ORD-OPEN")
    inspector.details = {"heatmaps": [HEATMAP]}
    inspection = post(client, owner, piece_id="P-HEAT").json()["id"]
    inspector.details = {}
    inspector.verdict = "fail"  # each of these enters the review queue
    reviews = [
        post(client, owner, [("a.jpg", jpeg(330 + i, 240), "image/jpeg")], piece_id=f"R{i}").json()
        for i in range(5)
    ]
    inspector.verdict = "review"  # matrix uploads leave the open order unpaid
    queue = client.get("/api/v1/reviews?limit=200", headers=staff).json()["data"]
    item = {r["inspection"]["id"]: r["id"] for r in queue}
    rid = [item[r["id"]] for r in reviews]
    for decided in rid[3:]:
        r = client.post(
            f"/api/v1/reviews/{decided}/decision",
            headers=staff,
            json={"decision": "reject", "labels": ["scratch"]},
        )
        assert r.status_code == 201, r.text
    return client, World(
        headers=headers,
        ids=ids,
        inspection=inspection,
        order="ORD-OPEN",
        paid_order="ORD-PAID",
        review=rid[0],
        open_reviews={"qc": rid[1], "admin": rid[2], "artisan": rid[1], "other": rid[1]},
        decided_reviews={"qc": rid[3], "admin": rid[4], "artisan": rid[3], "other": rid[3]},
    )


def request_for(method: str, path: str, who: str, w: World) -> dict[str, Any]:
    """The concrete request an identity sends for an operation: the artisan's resources, valid
    bodies (so that only who is asking decides the answer)."""
    url = path.format(
        user_id=w.ids["artisan"],
        version="no-such-model",
        design_id=DESIGN,
        inspection_id=w.inspection,
        position=0,
        order_id=w.paid_order,
        review_id=w.open_reviews.get(who, w.review),
    )
    if path == "/api/v1/reviews/{review_id}":
        url = f"/api/v1/reviews/{w.review}"
    if path.endswith("/corrections"):
        url = f"/api/v1/reviews/{w.decided_reviews.get(who, w.review)}/corrections"
    kw: dict[str, Any] = {}
    if (method, path) == ("POST", "/api/v1/inspections"):
        kw["data"] = {"design_id": DESIGN, "piece_id": "U1", "order_id": w.order}
        kw["files"] = [("photos", (f"{who}.jpg", jpeg(400, 300 + WHO.index(who)), "image/jpeg"))]
    elif (method, path) == ("POST", "/api/v1/orders"):
        kw["json"] = {
            "id": f"ORD-BY-{who.upper()}",
            "artisan_id": w.ids["artisan"],
            "pieces": [{"piece_id": "Z1", "design_id": DESIGN, "payout_minor": 100}],
        }
    elif (method, path) == ("POST", "/api/v1/users"):
        kw["json"] = {"name": f"Made by {who}", "role": "artisan"}
    elif (method, path) == ("PATCH", "/api/v1/users/{user_id}"):
        kw["json"] = {"active": True}  # allowed or not, the artisan stays active
    elif path.endswith(("/decision", "/corrections")):
        kw["json"] = {"decision": "approve", "labels": []}
    return {"method": method, "url": url, "headers": w.headers[who], **kw}


def operations(client: TestClient) -> set[tuple[str, str]]:
    paths = client.app.openapi()["paths"]  # type: ignore[attr-defined]
    return {(m.upper(), p) for p, ops in paths.items() for m in ops}


def test_the_table_names_every_operation(client: TestClient) -> None:
    assert operations(client) == set(EXPECTED), "update EXPECTED for the new or gone operation"


def test_authorization_matrix(world: tuple[TestClient, World]) -> None:
    client, w = world
    wrong = {}
    for method, path in sorted(operations(client)):
        for who in WHO:
            r = client.request(**request_for(method, path, who, w))
            want = EXPECTED[(method, path)][who]
            if r.status_code != want:
                wrong[f"{method} {path} as {who}"] = (
                    f"{r.status_code} (want {want}): {r.text[:160]}"
                )
            elif r.status_code >= 400:
                assert r.json()["error"]["code"], r.text
    assert wrong == {}


def test_artisans_never_see_each_others_data(world: tuple[TestClient, World]) -> None:
    client, w = world
    mine, theirs = w.headers["artisan"], w.headers["other"]
    post(client, theirs, piece_id="THEIRS")
    a_inspections = client.get("/api/v1/inspections?limit=200", headers=mine).json()["data"]
    b_inspections = client.get("/api/v1/inspections?limit=200", headers=theirs).json()["data"]
    assert {i["owner_id"] for i in a_inspections} == {w.ids["artisan"]}
    assert {i["owner_id"] for i in b_inspections} == {w.ids["other"]}
    b_orders = client.get("/api/v1/orders", headers=theirs).json()
    assert b_orders == {"data": [], "count": 0}  # no orders, so no payouts, of anyone else
    a_orders = client.get("/api/v1/orders", headers=mine).json()["data"]
    assert {o["id"] for o in a_orders} == {"ORD-PAID", "ORD-OPEN"}
    # Filters naming the other artisan are refused, not silently emptied.
    url = f"/api/v1/inspections?artisan_id={w.ids['artisan']}"
    assert client.get(url, headers=theirs).status_code == 403
    assert (
        client.get(f"/api/v1/orders?artisan_id={w.ids['artisan']}", headers=theirs).status_code
        == 403
    )
    # A missing resource and another artisan's answer alike: nothing leaks through the error.
    missing = client.get("/api/v1/orders/ORD-NOPE", headers=theirs)
    hidden = client.get(f"/api/v1/orders/{w.paid_order}", headers=theirs)
    assert (missing.status_code, missing.json()) == (hidden.status_code, hidden.json())
    for url in (
        f"/api/v1/inspections/{w.inspection}",
        f"/api/v1/inspections/{w.inspection}/photos/0",
        f"/api/v1/inspections/{w.inspection}/photos/0/heatmap",
    ):
        r = client.get(url, headers=theirs)
        assert r.status_code == 404 and w.inspection not in r.text
