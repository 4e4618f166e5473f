"""Admission control for uploads: a few inspected at once, a bounded queue waiting for a slot,
and a fast 503 with Retry-After for the rest, rather than a queue that grows until clients
time out (docs/RELIABILITY.md, "Overload")."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from serving.errors import ApiError


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
        # A slot frees about every (upload time / capacity); a second is the right order of
        # magnitude for a photo, and a client that waits longer only loses a little time.
        retry = max(1, math.ceil(self.waiting / max(self.capacity, 1)))
        return ApiError(
            503,
            "overloaded",
            f"the service is busy ({why}); retry after {retry} s",
            headers={"Retry-After": str(retry)},
        )
