"""Auth and visibility: tokens, roles, who may read, list and download what; JSON errors."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from photo_samples import jpeg
from sqlalchemy import select
from upload_helpers import DESIGN, post

from qc_model.errors import DataError
from serving.core.auth import create_user, hash_token, user_for_token
from serving.db.models import User


def test_no_token_and_wrong_token_are_401_json(client: TestClient, make_user) -> None:
    make_user()
    for headers in ({}, {"Authorization": "Bearer kito_wrong"}, {"Authorization": "Basic x"}):
        r = client.get("/api/v1/inspections", headers=headers)
        assert r.status_code == 401, headers
        assert r.json()["error"]["code"] == "unauthorized"
        assert r.headers["www-authenticate"] == "Bearer"


def test_token_is_stored_only_as_hash(client: TestClient) -> None:
    with client.app.state.sessionmaker() as s:  # type: ignore[attr-defined]
        user, token = create_user(s, name="Njeri", role="qc")
        row = s.scalars(select(User).where(User.id == user.id)).one()
        assert token.startswith("kito_") and len(token) > 40
        assert row.token_hash == hash_token(token) and token not in row.token_hash
        assert user_for_token(s, token) is not None
        assert user_for_token(s, token + "x") is None
        row.active = False
        s.commit()
        assert user_for_token(s, token) is None


@pytest.mark.parametrize(("role", "name"), [("boss", "A"), ("qc", ""), ("qc", "x" * 121)])
def test_create_user_refuses_bad_input(client: TestClient, role: str, name: str) -> None:
    with client.app.state.sessionmaker() as s, pytest.raises(DataError):  # type: ignore[attr-defined]
        create_user(s, name=name, role=role)


def test_me(client: TestClient, make_user) -> None:
    uid, headers = make_user("qc", "Njeri")
    assert client.get("/api/v1/users/me", headers=headers).json() == {
        "id": uid,
        "name": "Njeri",
        "role": "qc",
    }


def test_qc_cannot_submit(client: TestClient, make_user) -> None:
    _, headers = make_user("qc")
    r = post(client, headers)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"


def test_artisans_see_only_their_own(client: TestClient, make_user) -> None:
    a1, h1 = make_user("artisan", "A1")
    a2, h2 = make_user("artisan", "A2")
    _, hq = make_user("qc", "Q")
    mine = post(client, h1).json()
    theirs = post(client, h2, piece_id="P-2").json()
    url = f"/api/v1/inspections/{theirs['id']}"
    assert client.get(url, headers=h1).status_code == 404  # not even existence leaks
    assert client.get(url, headers=h2).status_code == 200
    assert client.get(url, headers=hq).json()["id"] == theirs["id"]
    assert client.get(f"{url}/photos/0", headers=h1).status_code == 404
    photo = client.get(f"/api/v1/inspections/{mine['id']}/photos/0", headers=h1)
    assert photo.status_code == 200 and photo.content == jpeg()
    assert photo.headers["content-type"] == "image/jpeg"
    assert client.get(f"{url}/photos/0", headers=hq).status_code == 200
    assert client.get(f"{url}/photos/5", headers=hq).status_code == 404

    assert [i["id"] for i in client.get("/api/v1/inspections", headers=h1).json()["data"]] == [
        mine["id"]
    ]
    all_ = client.get("/api/v1/inspections", headers=hq).json()
    assert all_["count"] == 2
    only_a2 = client.get(f"/api/v1/inspections?artisan_id={a2}", headers=hq).json()
    assert [i["id"] for i in only_a2["data"]] == [theirs["id"]]
    r = client.get(f"/api/v1/inspections?artisan_id={a2}", headers=h1)
    assert r.status_code == 403
    assert client.get(f"/api/v1/inspections?artisan_id={a1}", headers=h1).json()["count"] == 1


def test_list_filters_and_pagination(client: TestClient, make_user, inspector) -> None:
    _, headers = make_user()
    ids = []
    for i, verdict in enumerate(["pass", "fail", "pass", "review", "pass"]):
        inspector.verdict = verdict
        photo = [("a.jpg", jpeg(300 + i, 240), "image/jpeg")]
        ids.append(post(client, headers, photo, piece_id=f"P-{i % 2}").json()["id"])
    page = client.get("/api/v1/inspections?limit=2&offset=0", headers=headers).json()
    assert page["count"] == 5 and len(page["data"]) == 2
    seen = [
        i["id"]
        for off in (0, 2, 4)
        for i in client.get(f"/api/v1/inspections?limit=2&offset={off}", headers=headers).json()[
            "data"
        ]
    ]
    assert sorted(seen) == sorted(ids)  # pages cover everything once
    passed = client.get("/api/v1/inspections?verdict=pass", headers=headers).json()
    assert passed["count"] == 3 and {i["verdict"] for i in passed["data"]} == {"pass"}
    assert client.get("/api/v1/inspections?piece_id=P-1", headers=headers).json()["count"] == 2
    both = client.get(f"/api/v1/inspections?design_id={DESIGN}&verdict=fail", headers=headers)
    assert both.json()["count"] == 1
    assert client.get("/api/v1/inspections?design_id=X", headers=headers).json()["count"] == 0


@pytest.mark.parametrize("query", ["limit=0", "limit=201", "offset=-1", "limit=abc"])
def test_bad_query_is_422_json(client: TestClient, make_user, query: str) -> None:
    _, headers = make_user("qc")
    r = client.get(f"/api/v1/inspections?{query}", headers=headers)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "validation_error"
    assert r.json()["error"]["field"] == query.split("=")[0]


def test_unknown_route_and_method_are_json(client: TestClient) -> None:
    r = client.get("/api/v1/nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = client.delete("/healthz")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


def test_designs(client: TestClient, make_user) -> None:
    _, headers = make_user()
    body = client.get("/api/v1/designs", headers=headers).json()
    assert body["count"] == 16 == len(body["data"])
    assert client.get(f"/api/v1/designs/{DESIGN}", headers=headers).json()["id"] == DESIGN
    assert client.get("/api/v1/designs/NOPE", headers=headers).status_code == 404
    assert client.get("/api/v1/designs").status_code == 401


def test_bad_idempotency_key_is_422(client: TestClient, make_user) -> None:
    _, headers = make_user()
    r = post(client, headers, key="x" * 129)
    assert r.status_code == 422 and r.json()["error"]["field"] == "idempotency-key"


def test_openapi_docs(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert "/api/v1/inspections" in paths and "/api/v1/designs" in paths


def test_a_bug_is_a_json_500_without_traceback(client: TestClient, make_user) -> None:
    from serving.core.deps import get_catalog

    _, headers = make_user()

    def broken() -> dict:  # type: ignore[type-arg]
        raise RuntimeError("secret internals")

    client.app.dependency_overrides[get_catalog] = broken  # type: ignore[attr-defined]
    r = client.get("/api/v1/designs", headers=headers)
    client.app.dependency_overrides.clear()  # type: ignore[attr-defined]
    assert r.status_code == 500
    assert r.json() == {
        "error": {
            "code": "internal_error",
            "message": "internal error; it has been logged",
            "field": None,
        }
    }
    assert "secret" not in r.text and "Traceback" not in r.text
