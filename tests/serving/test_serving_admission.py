"""Overload: a bounded queue for inspection slots; beyond it, 503 with Retry-After at once."""

from __future__ import annotations

import threading

import pytest
from fastapi.testclient import TestClient
from upload_helpers import counts, post

from serving.core.errors import ApiError
from serving.inspection.admission import FifoSemaphore, InspectSlots


def _refusal(exc: pytest.ExceptionInfo[ApiError]) -> tuple[int, str, str]:
    headers = exc.value.headers or {}
    return exc.value.status, exc.value.code, headers.get("Retry-After", "")


def _queued(sem: FifoSemaphore, n: int) -> None:
    while len(sem._waiters) < n:
        threading.Event().wait(0.005)


def test_slots_go_to_waiters_in_arrival_order_and_never_to_a_newcomer() -> None:
    sem = FifoSemaphore(1)
    assert sem.acquire(timeout=0)
    order: list[int] = []
    go = threading.Event()

    def take(i: int) -> None:
        assert sem.acquire(timeout=30)
        order.append(i)
        go.wait(10)  # the first one holds its slot until the test has looked
        sem.release()

    threads = []
    for i in range(4):
        t = threading.Thread(target=take, args=(i,))
        t.start()
        _queued(sem, i + 1)  # each waits behind the ones before it
        threads.append(t)
    sem.release()
    # The freed slot went to the first waiter: a newcomer asking now finds none.
    assert not sem.acquire(timeout=0)
    go.set()
    for t in threads:
        t.join(10)
    assert order == [0, 1, 2, 3]
    assert sem.acquire(timeout=0)  # all done: the slot is free again


def test_a_waiter_that_times_out_leaves_the_queue() -> None:
    sem = FifoSemaphore(1)
    assert sem.acquire()
    assert not sem.acquire(timeout=0.05)
    assert not sem._waiters
    sem.release()
    assert sem.acquire(timeout=0)


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
