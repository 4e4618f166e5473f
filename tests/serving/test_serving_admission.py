"""Overload: a bounded queue for inspection slots; beyond it, 503 with Retry-After at once."""

from __future__ import annotations

import threading

import pytest
from fastapi.testclient import TestClient
from upload_helpers import counts, post

from serving.core.errors import ApiError
from serving.inspection.admission import InspectSlots


def _refusal(exc: pytest.ExceptionInfo[ApiError]) -> tuple[int, str, str]:
    headers = exc.value.headers or {}
    return exc.value.status, exc.value.code, headers.get("Retry-After", "")


def test_slots_admit_capacity_then_queue_then_refuse() -> None:
    slots = InspectSlots(capacity=2, max_waiting=1, max_wait_s=30)
    slots.acquire()
    slots.acquire()
    waiter_done = threading.Event()

    def wait_for_slot() -> None:
        with slots.hold():
            waiter_done.set()

    waiter = threading.Thread(target=wait_for_slot)
    waiter.start()
    while slots.waiting == 0:  # the queue's one place is taken
        threading.Event().wait(0.01)
    with pytest.raises(ApiError) as refused:
        slots.acquire()
    status, code, retry = _refusal(refused)
    assert (status, code) == (503, "overloaded") and int(retry) >= 1
    slots.release()  # a slot frees: the waiter gets it, nobody is refused any more
    waiter.join(10)
    assert waiter_done.is_set() and slots.waiting == 0
    slots.acquire()  # the waiter released it again
    slots.release()
    slots.release()


def test_slot_wait_is_bounded_in_time() -> None:
    slots = InspectSlots(capacity=1, max_waiting=5, max_wait_s=0.05)
    slots.acquire()
    with pytest.raises(ApiError) as refused:
        slots.acquire()
    assert _refusal(refused)[:2] == (503, "overloaded")
    assert "0.05 s" in refused.value.message and slots.waiting == 0


def test_full_queue_is_503_with_retry_after_and_stores_nothing(make_client, make_user) -> None:
    client: TestClient = make_client(inspect_concurrency=1, inspect_queue=0)
    _, headers = make_user()
    slots: InspectSlots = client.app.state.cpu_slots  # type: ignore[attr-defined]
    slots.acquire()  # the one slot is busy, and no upload may wait for it
    try:
        r = post(client, headers)
    finally:
        slots.release()
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "overloaded" and int(r.headers["retry-after"]) >= 1
    assert counts(client) == (0, 0, 0)
    assert post(client, headers).status_code == 201  # and the next one, with the slot free


def test_reads_are_not_queued_behind_uploads(make_client, make_user) -> None:
    client: TestClient = make_client(inspect_concurrency=1, inspect_queue=0)
    _, headers = make_user()
    slots: InspectSlots = client.app.state.cpu_slots  # type: ignore[attr-defined]
    slots.acquire()
    try:
        assert client.get("/api/v1/inspections", headers=headers).status_code == 200
    finally:
        slots.release()


def test_uploads_beyond_the_admission_bound_are_refused_on_arrival(make_client, make_user) -> None:
    client: TestClient = make_client(inspect_concurrency=2, inspect_queue=3)
    _, headers = make_user()
    slots: InspectSlots = client.app.state.cpu_slots  # type: ignore[attr-defined]
    for _ in range(5):  # five uploads in progress: two inspected, three waiting
        assert slots.admit()
    assert not slots.admit()
    try:
        r = post(client, headers)
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "overloaded"
        assert r.headers["retry-after"] == "2"  # three waiting, two slots
        assert counts(client) == (0, 0, 0)
        assert client.get("/api/v1/inspections", headers=headers).status_code == 200
    finally:
        for _ in range(5):
            slots.leave()
    assert post(client, headers).status_code == 201
    assert slots.admitted == 0  # every admitted upload is counted out again
