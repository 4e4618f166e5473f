"""The admin's list of one artisan's reused-photo matches (GET /api/v1/users/{id}/photo-matches):
what was held, which earlier photos (and whose) it matched, QC's decisions, counts, paging,
and who may read it."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from order_helpers import make_order
from photo_samples import jpeg
from upload_helpers import post

from qc_model.catalog import Design
from qc_model.decode import DecodedPhoto
from qc_model.fingerprint import FRAME_MAT, Fingerprint
from serving.inspection.pipeline import InspectionOutcome

SAME = 0x0F0F_F0F0_1234_5678  # every "copied" photo carries this hash
URL = "/api/v1/users/{}/photo-matches"


class HashInspector:
    """Passes every photo and fingerprints it with `next_hash` (the hash itself is tested in
    test_serving_fingerprints and bench/bench_fingerprint.py; here only what is listed)."""

    model_version = "fake-hash-1"
    min_px_per_mm = None

    def __init__(self) -> None:
        self.next_hash = SAME

    def inspect(
        self, photos: list[DecodedPhoto], design: Design, plan: object = None
    ) -> InspectionOutcome:
        fp = Fingerprint(self.next_hash, FRAME_MAT).as_json()
        details = {"verdict": {"decision": "pass", "reasons": []}, "fingerprints": [fp]}
        return InspectionOutcome("pass", self.model_version, details, {})


@pytest.fixture
def inspector() -> HashInspector:
    return HashInspector()


def _send(client: TestClient, headers: dict[str, str], order: str, piece: str) -> dict[str, Any]:
    data = jpeg(320 + len(piece), 240)  # distinct bytes: not one file sent twice
    r = post(client, headers, [("a.jpg", data, "image/jpeg")], piece_id=piece, order_id=order)
    assert r.status_code == 201, r.json()
    return r.json()


def test_admin_lists_an_artisans_matches_with_the_earlier_photos_and_decisions(
    client: TestClient, make_user, inspector: HashInspector
) -> None:
    wanjiru, hw = make_user("artisan", "Wanjiru")
    otieno, ho = make_user("artisan", "Otieno")
    _, staff = make_user("qc", "Njeri")
    _, admin = make_user("admin", "Amina")
    make_order(client, staff, otieno, {"X1": 10000}, order_id="ORD-O")
    make_order(client, staff, wanjiru, {"P1": 45000, "P2": 30000, "P3": 30000}, order_id="ORD-W")
    original = _send(client, ho, "ORD-O", "X1")  # Otieno's photo, first
    held_a = _send(client, hw, "ORD-W", "P1")  # the same photo again, by Wanjiru
    held_b = _send(client, hw, "ORD-W", "P2")  # and again, for another piece
    inspector.next_hash = SAME ^ 0xFFFF_0000_FFFF_0000  # a photo of its own: not held
    assert _send(client, hw, "ORD-W", "P3")["verdict"] == "pass"
    assert held_a["verdict"] == held_b["verdict"] == "review"

    # QC confirms the first match (reject).
    items = client.get("/api/v1/reviews?reason=photo_reused", headers=staff).json()["data"]
    first = next(i for i in items if i["inspection"]["id"] == held_a["id"])
    r = client.post(
        f"/api/v1/reviews/{first['id']}/decision",
        headers=staff,
        json={"decision": "reject", "labels": [], "note": "the same photo as X1"},
    )
    assert r.status_code == 201, r.json()

    r = client.get(URL.format(wanjiru), headers=admin)
    assert r.status_code == 200, r.json()
    body = r.json()
    assert body["artisan_name"] == "Wanjiru"
    assert (body["count"], body["open"], body["rejected"]) == (2, 1, 1)
    assert [h["inspection_id"] for h in body["data"]] == [held_b["id"], held_a["id"]]
    newest, oldest = body["data"]
    assert newest["review_status"] == "open" and newest["decision"] is None
    assert oldest["review_status"] == "decided" and oldest["decision"]["decision"] == "reject"
    assert oldest["model_verdict"] == "pass" and oldest["piece_id"] == "P1"
    (m,) = oldest["matches"]
    assert (m["inspection_id"], m["piece_id"]) == (original["id"], "X1")
    assert m["artisan_name"] == "Otieno"
    assert m["same_artisan"] is False and m["distance_bits"] == 0
    assert m["url"] == f"/api/v1/inspections/{original['id']}/photos/0"
    # The second copy matched both earlier photos: Otieno's and Wanjiru's own P1.
    assert {x["piece_id"] for x in newest["matches"]} == {"X1", "P1"}
    assert client.get(m["url"], headers=admin).status_code == 200
    assert newest["photos"][0]["url"].endswith(f"{held_b['id']}/photos/0")

    # Paging, and the artisan whose photo was copied has no matches of their own.
    page = client.get(URL.format(wanjiru) + "?limit=1&offset=1", headers=admin).json()
    assert page["count"] == 2 and [h["inspection_id"] for h in page["data"]] == [held_a["id"]]
    assert client.get(URL.format(otieno), headers=admin).json()["count"] == 0


def test_only_admins_read_it_and_only_for_artisans(client: TestClient, make_user) -> None:
    artisan, ha = make_user("artisan", "Wanjiru")
    qc, staff = make_user("qc", "Njeri")
    _, admin = make_user("admin", "Amina")
    assert client.get(URL.format(artisan), headers=ha).status_code == 403
    assert client.get(URL.format(artisan), headers=staff).status_code == 403
    assert client.get(URL.format(artisan)).status_code == 401
    for missing in (qc, 999_999):
        r = client.get(URL.format(missing), headers=admin)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    for bad in ("0", "x", str(2**63)):
        r = client.get(URL.format(bad), headers=admin)
        assert r.status_code == 422 and "Traceback" not in r.text
    assert client.get(URL.format(artisan) + "?limit=0", headers=admin).status_code == 422
