"""POST/GET /api/v1/inspections: intake, stored photos and rows, idempotency, visibility."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from order_helpers import make_order
from photo_samples import bad_photos, good_photos, jpeg, pil_bytes
from upload_helpers import DESIGN, counts, post

from serving.db.models import Inspection

BAD = bad_photos()


def test_upload_stores_photos_and_inspection(client: TestClient, make_user, inspector) -> None:
    owner, headers = make_user("artisan")
    _, staff = make_user("qc", "Q")
    make_order(client, staff, owner, {"P-001": 45000}, order_id="ORD-7")
    data = jpeg(640, 480)
    r = post(client, headers, [("hoop.jpg", data, "image/jpeg")], order_id="ORD-7")
    assert r.status_code == 201, r.json()
    body = r.json()
    assert r.headers["location"] == f"/api/v1/inspections/{body['id']}"
    assert body["owner_id"] == owner and body["design_id"] == DESIGN
    assert body["piece_id"] == "P-001" and body["order_id"] == "ORD-7"
    assert body["status"] == "inspected" and body["verdict"] == "pass"
    assert body["model_version"] == "fake-1" and body["result"]["sizes"] == [[640, 480]]
    assert {"decode", "store", "inspect", "total", "model.infer"} <= set(body["timings_ms"])
    (photo,) = body["photos"]
    assert photo["width"] == 640 and photo["filename"] == "hoop.jpg"
    store = client.app.state.store  # type: ignore[attr-defined]
    assert store.get(photo["sha256"]) == data
    ((decoded, design),) = inspector.calls
    assert design.id == DESIGN and decoded[0].size == (640, 480)
    assert counts(client) == (1, 1, 1)


def test_all_accepted_formats_in_one_upload(client: TestClient, make_user) -> None:
    _, headers = make_user()
    good = good_photos()
    photos = [good[k] for k in ("jpeg", "png", "webp", "heic", "gray_jpeg", "no_extension")]
    r = post(client, headers, [(n, b, c) for b, n, c in photos])
    assert r.status_code == 201, r.json()
    types = [p["media_type"] for p in r.json()["photos"]]
    assert types == ["image/jpeg", "image/png", "image/webp", "image/heic"] + ["image/jpeg"] * 2
    # The same JPEG bytes twice are stored once (content-addressed), listed twice.
    assert counts(client) == (1, 6, 5)


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_photo_is_refused_and_nothing_is_stored(
    client: TestClient, make_user, inspector, case: str
) -> None:
    _, headers = make_user()
    data, name, ctype, code = BAD[case]
    r = post(client, headers, [("ok.jpg", jpeg(), "image/jpeg"), (name, data, ctype)])
    assert 400 <= r.status_code < 500
    err = r.json()["error"]
    assert err["code"] == code and err["field"] == "photos.1" and err["message"]
    assert counts(client) == (0, 0, 0) and inspector.calls == []


@pytest.mark.parametrize(
    ("fields", "code", "field"),
    [
        ({"design_id": "KQ-NOPE-1"}, "unknown_design", "design_id"),
        ({"piece_id": "../x"}, "validation_error", "piece_id"),
        ({"piece_id": ""}, "validation_error", "piece_id"),
        ({"order_id": "a b"}, "validation_error", "order_id"),
    ],
)
def test_bad_fields_are_refused(client: TestClient, make_user, fields, code, field) -> None:
    _, headers = make_user()
    r = post(client, headers, **fields)
    assert r.status_code == 422 and r.json()["error"]["code"] == code
    assert r.json()["error"]["field"] == field
    assert counts(client) == (0, 0, 0)


def test_photo_count_limits(client: TestClient, make_user) -> None:
    _, headers = make_user()
    r = client.post(
        "/api/v1/inspections", headers=headers, data={"design_id": DESIGN, "piece_id": "P"}
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "photos"
    seven = [(f"{i}.jpg", jpeg(200 + i, 200), "image/jpeg") for i in range(7)]
    r = post(client, headers, seven)
    assert r.status_code == 422 and r.json()["error"]["code"] == "too_many_photos"
    assert counts(client) == (0, 0, 0)


def test_idempotent_retry_returns_first_answer(client: TestClient, make_user, inspector) -> None:
    _, headers = make_user()
    first = post(client, headers, key="retry-123")
    again = post(client, headers, key="retry-123")
    assert first.status_code == 201 and again.status_code == 200
    assert again.json() == first.json()
    assert counts(client) == (1, 1, 1) and len(inspector.calls) == 1
    other = post(client, headers, [("b.png", pil_bytes("PNG"), "image/png")], key="retry-123")
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_conflict"
    assert counts(client) == (1, 1, 1)
    # Keys are per user: another artisan's identical key is a different request.
    _, headers2 = make_user(name="Achieng")
    assert post(client, headers2, key="retry-123").status_code == 201


def test_idempotency_race_is_settled_by_the_unique_constraint(
    client: TestClient, make_user, inspector
) -> None:
    """A concurrent twin commits between our replay check and our insert: the database refuses
    the second row and the loser answers with the winner's inspection."""
    owner, headers = make_user()
    make_twin = client.app.state.sessionmaker  # type: ignore[attr-defined]
    real_inspect = inspector.inspect

    def inspect_while_twin_commits(photos: Any, design: Any, plan: Any = None) -> Any:
        with make_twin() as s:
            s.add(
                Inspection(
                    id="twin",
                    owner_id=owner,
                    design_id=DESIGN,
                    piece_id="P-001",
                    status="received",
                    idempotency_key="race",
                    request_hash=_hash_of_default_post(),
                )
            )
            s.commit()
        return real_inspect(photos, design, plan)

    inspector.inspect = inspect_while_twin_commits
    r = post(client, headers, key="race")
    assert r.status_code == 200 and r.json()["id"] == "twin"
    assert counts(client)[0] == 1


def _hash_of_default_post() -> str:
    from serving.inspection.submission import Submission, UploadedPhoto

    up = UploadedPhoto(jpeg(), "a.jpg", "image/jpeg")
    return Submission(DESIGN, "P-001", None, [up], "race").content_hash()


def test_without_model_the_upload_is_kept_as_received(settings, make_user) -> None:
    from serving.app import create_app
    from serving.core.auth import create_user

    app = create_app(settings)  # no model package: no inspector
    with TestClient(app) as c:
        with app.state.sessionmaker() as s:
            _, token = create_user(s, name="A", role="artisan")
        r = post(c, {"Authorization": f"Bearer {token}"})
    assert r.status_code == 201
    assert r.json()["status"] == "received" and r.json()["verdict"] is None


def test_inspector_failure_keeps_upload_as_failed(client: TestClient, make_user, inspector) -> None:
    _, headers = make_user()
    inspector.error = RuntimeError("onnx exploded")
    r = post(client, headers)
    assert r.status_code == 201
    assert r.json()["status"] == "failed" and "RuntimeError" in r.json()["error"]
    assert counts(client) == (1, 1, 1)


def test_verdicts_are_counted_by_design_and_model(client: TestClient, make_user, inspector) -> None:
    _, headers = make_user()
    inspector.verdict = "review"
    assert post(client, headers).status_code == 201
    text = client.get("/metrics").text
    assert (
        f'kito_verdicts_total{{design="{DESIGN}",model_version="fake-1",verdict="review"}} 1.0'
        in text
    )


def test_photo_store_failure_is_503_and_records_nothing(client: TestClient, make_user) -> None:
    from serving.store.storage import StorageError

    _, headers = make_user()
    store = client.app.state.store  # type: ignore[attr-defined]

    def broken_put(data: bytes, key: str | None = None) -> str:
        raise StorageError("disk full")

    store.put = broken_put
    r = post(client, headers)
    assert r.status_code == 503 and r.json()["error"]["code"] == "storage_unavailable"
    assert counts(client) == (0, 0, 0)


def test_database_failure_leaves_only_an_orphan_photo(client: TestClient, make_user) -> None:
    """Photos are written before the row: a failed commit leaves a findable file, no row."""
    from sqlalchemy.exc import OperationalError

    from serving.db.session import get_db

    _, headers = make_user()
    factory = client.app.state.sessionmaker  # type: ignore[attr-defined]

    def failing_db():  # type: ignore[no-untyped-def]
        with factory() as session:
            real_commit = session.commit

            def commit() -> None:
                # The row is flushed before the commit (the workflow needs it), so look in
                # the identity map as well as at the pending objects.
                pending = [*session.new, *session.identity_map.values()]
                if any(isinstance(o, Inspection) for o in pending):
                    raise OperationalError("INSERT", {}, Exception("server closed the connection"))
                real_commit()

            session.commit = commit  # type: ignore[method-assign]
            yield session

    client.app.dependency_overrides[get_db] = failing_db  # type: ignore[attr-defined]
    r = post(client, headers)
    client.app.dependency_overrides.clear()  # type: ignore[attr-defined]
    assert r.status_code == 503 and r.json()["error"]["code"] == "database_unavailable"
    assert counts(client) == (0, 0, 1)


def test_uploads_wait_for_a_cpu_slot(client: TestClient, make_user) -> None:
    import threading

    _, headers = make_user()
    slots = client.app.state.cpu_slots  # type: ignore[attr-defined]
    for _ in range(slots.capacity):
        slots.acquire()
    waited = threading.Event()

    def release_once_the_upload_waits() -> None:
        # No timer: the slots are given back only once the upload is seen waiting for one, so
        # the test holds however slowly the machine runs.
        while slots.waiting == 0:
            threading.Event().wait(0.005)
        waited.set()
        threading.Event().wait(0.05)
        for _ in range(slots.capacity):
            slots.release()

    releaser = threading.Thread(target=release_once_the_upload_waits)
    releaser.start()
    r = post(client, headers)
    releaser.join(10)
    assert r.status_code == 201, r.json()
    assert waited.is_set() and r.json()["timings_ms"]["queue"] > 0
    assert "queue;dur=" in r.headers["Server-Timing"]


def test_a_model_with_a_fixed_scale_gets_its_photos_decoded_that_fine(
    client: TestClient, make_user, inspector
) -> None:
    """A 2048 px upload is decoded at 1/2 (1024 px, ~2.8 px/mm on a framed card) unless the
    live model reads photos at a finer scale; then it is decoded whole, not enlarged later."""
    _, headers = make_user("artisan")
    data = jpeg(2048, 1536)
    assert post(client, headers, [("a.jpg", data, "image/jpeg")]).status_code == 201
    inspector.min_px_per_mm = 4.5  # a surface branch trained at ~5.2 px/mm, 15 % tolerance
    r = post(client, headers, [("a.jpg", data, "image/jpeg")], piece_id="P-002")
    assert r.status_code == 201, r.json()
    (coarse, _), (fine, _) = inspector.calls
    assert coarse[0].size == (1024, 768) and fine[0].size == (2048, 1536)
