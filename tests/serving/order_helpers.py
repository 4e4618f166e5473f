"""Helpers for the order, review and payout tests: create an order, submit a piece's photos."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from photo_samples import jpeg
from upload_helpers import DESIGN, post

OTHER_DESIGN = "KQ-STUD-BR-12"


def make_order(
    client: TestClient,
    staff: dict[str, str],
    artisan_id: int,
    pieces: dict[str, int] | None = None,
    order_id: str | None = "ORD-1",
    design: str = DESIGN,
) -> dict[str, Any]:
    """Create an order of `pieces` (piece id -> payout in minor units), all of `design`."""
    pieces = pieces if pieces is not None else {"P1": 45000, "P2": 30000}
    body: dict[str, Any] = {
        "artisan_id": artisan_id,
        "pieces": [
            {"piece_id": p, "design_id": design, "payout_minor": v} for p, v in pieces.items()
        ],
    }
    if order_id is not None:
        body["id"] = order_id
    r = client.post("/api/v1/orders", headers=staff, json=body)
    assert r.status_code == 201, r.json()
    return r.json()


def submit(
    client: TestClient,
    artisan: dict[str, str],
    piece_id: str,
    order_id: str = "ORD-1",
    seed: int = 0,
    design: str = DESIGN,
) -> dict[str, Any]:
    """An inspection of one piece of an order; `seed` varies the photo so uploads differ."""
    photo = [("a.jpg", jpeg(320 + seed, 240), "image/jpeg")]
    r = post(client, artisan, photo, piece_id=piece_id, order_id=order_id, design_id=design)
    assert r.status_code == 201, r.json()
    return r.json()


def piece(order: dict[str, Any], piece_id: str) -> dict[str, Any]:
    return next(p for p in order["pieces"] if p["piece_id"] == piece_id)


def paid_orders(client: TestClient, make_user: Any, n: int = 1) -> list[dict[str, Any]]:
    """`n` orders of one piece each, inspected as pass: each paid at once."""
    artisan, ha = make_user("artisan", "Wanjiru")
    _, staff = make_user("qc", "Q")
    out = []
    for i in range(n):
        make_order(client, staff, artisan, {"P1": 1000 * (i + 1)}, order_id=f"ORD-{i}")
        submit(client, ha, "P1", order_id=f"ORD-{i}", seed=i)
        out.append(client.get(f"/api/v1/orders/ORD-{i}", headers=staff).json())
    return out
