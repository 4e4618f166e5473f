"""Issue 28, cases 6 and 8: request bodies are not coerced, currencies are ISO 4217 codes, and
control characters get the same 422 on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from upload_helpers import DESIGN

from serving.db.models import Order, User


def _order(artisan: Any, **change: Any) -> dict[str, Any]:
    piece = {"piece_id": "P1", "design_id": DESIGN, "payout_minor": 100}
    piece.update(change.pop("piece", {}))
    return {"artisan_id": artisan, "currency": "KES", "pieces": [piece], **change}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"piece": {"payout_minor": "100"}}, "payout_minor"),
        ({"piece": {"payout_minor": True}}, "payout_minor"),
        ({"piece": {"payout_minor": 1e3}}, "payout_minor"),
        ({"piece": {"payout_minor": 100.0}}, "payout_minor"),
        ({"artisan_id": "ARTISAN"}, "artisan_id"),
        ({"currency": "ZZZ"}, "currency"),
        ({"currency": "XAU"}, "currency"),
        ({"piece": {"design_id": DESIGN + "\x00"}}, "design_id"),
    ],
)
def test_loose_order_fields_are_refused(
    client: TestClient, make_user, change: dict[str, Any], field: str
) -> None:
    artisan, _ = make_user("artisan")
    _, staff = make_user("qc", "Q")
    body = _order(artisan, **change)
    if body["artisan_id"] == "ARTISAN":
        body["artisan_id"] = str(artisan)  # "3": the right id, as a string
    r = client.post("/api/v1/orders", headers=staff, json=body)
    assert r.status_code == 422, r.json()
    assert field in str(r.json()["error"]), r.json()
    with client.app.state.sessionmaker() as s:  # type: ignore[attr-defined]
        assert s.scalar(select(func.count()).select_from(Order)) == 0


def test_exact_order_fields_are_accepted(client: TestClient, make_user) -> None:
    artisan, _ = make_user("artisan")
    _, staff = make_user("qc", "Q")
    r = client.post("/api/v1/orders", headers=staff, json=_order(artisan, currency="TZS"))
    assert r.status_code == 201 and r.json()["currency"] == "TZS"
    assert r.json()["pieces"][0]["payout_minor"] == 100


@pytest.mark.parametrize("bad", ["Wan\x00jiru", "Wan\x1bjiru", "Wan\njiru", "Wan\x85jiru"])
def test_control_characters_in_a_user_name_are_422_on_both_databases(
    client: TestClient, make_user, bad: str
) -> None:
    _, admin = make_user("admin", "Admin")
    r = client.post("/api/v1/users", headers=admin, json={"name": bad, "role": "artisan"})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] in ("name", "body.name"), r.json()
    with client.app.state.sessionmaker() as s:  # type: ignore[attr-defined]
        assert s.scalar(select(func.count()).select_from(User)) == 1


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/reviews/nope/decision", {"decision": "reject", "labels": ["scr\x00atch"]}),
        ("/api/v1/models/rollback", {"to": "v\x00", "reason": "x"}),
        ("/api/v1/models/rollback", {"reason": "bad\x00reason"}),
    ],
)
def test_control_characters_in_other_texts_are_422(
    client: TestClient, make_user, path: str, body: dict[str, Any]
) -> None:
    _, admin = make_user("admin", "Admin")
    r = client.post(path, headers=admin, json=body)
    assert r.status_code == 422, r.text
