"""Admission control for uploads: a few inspected at once, a bounded number waiting, and a fast
503 with Retry-After for the rest, rather than a queue that grows until clients time out
(docs/RELIABILITY.md, "Overload").

Two places: `AdmissionMiddleware` counts uploads from the moment they arrive, before their
body is parsed or a worker thread is taken (measured: under 48 clients most of the waiting
happened there, in front of the slots, where a queue bound alone never saw it); `InspectSlots`
bounds the CPU-heavy part and how long an admitted upload may wait for it.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from starlette.types import ASGIApp, Receive, Scope, Send

from serving.core.errors import ApiError, error_body


class InspectSlots:
    """`capacity` uploads decoded and inspected at once; at most `max_waiting` more wait for a
    slot, each for at most `max_wait_s`. Decoding and inspecting are CPU-bound: more at once
    than there are cores only makes each slower (docs/BENCHMARKS.md)."""

    def __init__(self, capacity: int, max_waiting: int, max_wait_s: float) -> None:
        self.capacity = capacity
        self.max_waiting = max_waiting
        self.max_wait_s = max_wait_s
        self._free = threading.Semaphore(capacity)
        self._lock = threading.Lock()
        self.waiting = 0
        self.admitted = 0  # uploads in the service, anywhere between arrival and answer

    def admit(self) -> bool:
        """Count an arriving upload in, unless `capacity + max_waiting` are in already."""
        with self._lock:
            if self.admitted >= self.capacity + self.max_waiting:
                return False
            self.admitted += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self.admitted -= 1

    def retry_after_s(self) -> int:
        # A slot frees about every (upload time / capacity); a second per queued upload per
        # slot is the right order of magnitude for a photo.
        return max(1, math.ceil(max(self.waiting, self.admitted - self.capacity) / self.capacity))

    @contextmanager
    def hold(self) -> Iterator[None]:
        """A slot for the duration of the block, or `ApiError` 503 `overloaded`."""
        self.acquire()
        try:
            yield
        finally:
            self.release()

    def acquire(self) -> None:
        if self._free.acquire(blocking=False):
            return
        with self._lock:
            if self.waiting >= self.max_waiting:
                raise self._overloaded(f"{self.waiting} uploads are already waiting")
            self.waiting += 1
        try:
            got = self._free.acquire(timeout=self.max_wait_s)
        finally:
            with self._lock:
                self.waiting -= 1
        if not got:
            raise self._overloaded(f"no inspection slot came free in {self.max_wait_s:g} s")

    def release(self) -> None:
        self._free.release()

    def _overloaded(self, why: str) -> ApiError:
        retry = self.retry_after_s()
        return ApiError(
            503,
            "overloaded",
            f"the service is busy ({why}); retry after {retry} s",
            headers={"Retry-After": str(retry)},
        )


class AdmissionMiddleware:
    """503 `overloaded` with Retry-After for an upload (POST `path`) that arrives while
    `slots.capacity + slots.max_waiting` uploads are in the service already: answered at once,
    before its body is read."""

    def __init__(self, app: ASGIApp, slots: InspectSlots, path: str) -> None:
        self.app = app
        self.slots = slots
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        if not self.slots.admit():
            await self._refuse(send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.slots.leave()

    async def _refuse(self, send: Send) -> None:
        retry = self.slots.retry_after_s()
        busy = f"{self.slots.admitted} uploads in progress"
        message = f"the service is busy ({busy}); retry after {retry} s"
        body = json.dumps(error_body("overloaded", message)).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(body)),
            (b"retry-after", str(retry).encode()),
        ]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})
