"""Issue 28, case 9 (second half): an admin's upload of an artisan's piece does not hide the
artisan's own latest inspection from them."""

from __future__ import annotations

from fastapi.testclient import TestClient
from order_helpers import make_order, piece, submit


def test_artisan_keeps_seeing_their_own_latest_inspection(client: TestClient, make_user) -> None:
    artisan, ha = make_user("artisan", "Wanjiru")
    _, admin = make_user("admin", "Admin")
    make_order(client, admin, artisan, {"P1": 100, "P2": 200})
    own = submit(client, ha, "P1")
    by_admin = submit(client, admin, "P1", seed=3)
    for path in ("/api/v1/orders/ORD-1", "/api/v1/orders"):
        body = client.get(path, headers=ha).json()
        order = body if "pieces" in body else body["data"][0]
        seen = piece(order, "P1")
        assert seen["latest_inspection_id"] == own["id"], seen
        assert seen["latest_verdict"] == own["verdict"]
        assert piece(order, "P2")["latest_inspection_id"] is None
    r = client.get(f"/api/v1/inspections/{own['id']}", headers=ha)
    assert r.status_code == 200
    # Staff see the piece as it stands: the admin's inspection is its latest.
    staff_view = client.get("/api/v1/orders/ORD-1", headers=admin).json()
    assert piece(staff_view, "P1")["latest_inspection_id"] == by_admin["id"]
    assert client.get(f"/api/v1/inspections/{by_admin['id']}", headers=ha).status_code == 404
