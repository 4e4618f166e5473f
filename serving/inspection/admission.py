"""Admission control for uploads: a few inspected at once, a bounded number waiting, and a fast
503 with Retry-After for the rest, rather than a queue that grows until clients time out
(docs/RELIABILITY.md, "Overload").

Two places: `AdmissionMiddleware` counts uploads from the moment they arrive, before their
body is parsed or a worker thread is taken (measured: under 48 clients most of the waiting
happened there, in front of the slots, where a queue bound alone never saw it); `InspectSlots`
bounds the CPU-heavy part and how long an admitted upload may wait for it.

Only authenticated uploads are counted: the middleware checks the bearer token first (an
index probe) and answers 401 before reading any body, so connections without a valid token
cannot fill the bound (issue 28: 20 unauthenticated bodies trickling in at 16 bytes a second
blocked every artisan). One token and one client address may each hold only a few uploads at
once (429 `too_many_uploads`); how long a body may take is bounded by serving.core.limits.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from anyio import to_thread
from starlette.types import ASGIApp, Receive, Scope, Send

from serving.core.errors import ApiError, error_body
from serving.core.ratelimit import FailedAuthLimiter

log = logging.getLogger("kito.serving")


class FifoSemaphore:
    """A counting semaphore that serves its waiters in arrival order: a released slot goes to
    the longest waiter, never to a newcomer. threading.Semaphore lets a thread arriving as a
    slot frees take it before the woken waiter runs, so under load an unlucky upload can lose
    several turns in a row, and the p99 latency is that upload's."""

    def __init__(self, value: int) -> None:
        self._lock = threading.Lock()
        self._value = value
        self._waiters: deque[threading.Lock] = deque()

    def acquire(self, timeout: float | None = None) -> bool:
        """A slot: at once if one is free and nobody waits, else in turn (False after
        `timeout` seconds; 0: do not wait)."""
        with self._lock:
            if self._value > 0 and not self._waiters:
                self._value -= 1
                return True
            if timeout is not None and timeout <= 0:
                return False
            turn = threading.Lock()
            turn.acquire()
            self._waiters.append(turn)
        if turn.acquire(timeout=-1 if timeout is None else timeout):
            return True
        with self._lock:
            if turn in self._waiters:
                self._waiters.remove(turn)
                return False
        return True  # handed a slot between the timeout and the lock: it is ours

    def release(self) -> None:
        with self._lock:
            if self._waiters:
                self._waiters.popleft().release()  # the slot passes on without being free
            else:
                self._value += 1


class InspectSlots:
    """`capacity` uploads decoded and inspected at once; at most `max_waiting` more wait for a
    slot, each for at most `max_wait_s`. Decoding and inspecting are CPU-bound: more at once
    than there are cores only makes each slower (docs/BENCHMARKS.md)."""

    def __init__(self, capacity: int, max_waiting: int, max_wait_s: float) -> None:
        self.capacity = capacity
        self.max_waiting = max_waiting
        self.max_wait_s = max_wait_s
        self._free = FifoSemaphore(capacity)
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
        if self._free.acquire(timeout=0):
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


class PerKeyLimit:
    """At most `limit` at once per key (a token's hash, a client address)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._held: Counter[str] = Counter()
        self._lock = threading.Lock()

    def take(self, key: str) -> bool:
        with self._lock:
            if self._held[key] >= self.limit:
                return False
            self._held[key] += 1
            return True

    def give(self, key: str) -> None:
        with self._lock:
            self._held[key] -= 1
            if self._held[key] <= 0:
                del self._held[key]


# The token check: True for an active user's token, False for an unknown or revoked one.
Authenticate = Callable[[str], bool]


class AdmissionMiddleware:
    """For an upload (POST `path`): 401 at once without a valid bearer token; 503 `overloaded`
    with Retry-After when `slots.capacity + slots.max_waiting` uploads are in the service
    already; 429 `too_many_uploads` when its token or its address holds too many. All answered
    before the body is read."""

    def __init__(
        self,
        app: ASGIApp,
        slots: InspectSlots,
        path: str,
        authenticate: Authenticate | None = None,
        limiter: FailedAuthLimiter | None = None,
        per_token: int = 1_000_000,
        per_address: int = 1_000_000,
    ) -> None:
        self.app = app
        self.slots = slots
        self.path = path
        self.authenticate = authenticate
        self.limiter = limiter
        self.per_token = PerKeyLimit(per_token)
        self.per_address = PerKeyLimit(per_address)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        client = scope["client"][0] if scope.get("client") else "unknown"
        token = _bearer(scope)
        if self.authenticate is not None:
            refusal = await self._check_token(client, token)
            if refusal is not None:
                await _answer(send, *refusal)
                return
        if not self.slots.admit():
            await self._refuse(send)
            return
        holds = []
        try:
            for limit, key, what in (
                (self.per_token, hashlib.sha256((token or "").encode()).hexdigest(), "this token"),
                (self.per_address, f"addr:{client}", "this address"),
            ):
                if not limit.take(key):
                    message = f"{what} has {limit.limit} uploads in progress; wait for an answer"
                    await _answer(send, 429, "too_many_uploads", message, {"retry-after": "1"})
                    return
                holds.append((limit, key))
            await self.app(scope, receive, send)
        finally:
            for limit, key in holds:
                limit.give(key)
            self.slots.leave()

    async def _check_token(
        self, client: str, token: str | None
    ) -> tuple[int, str, str, dict[str, str]] | None:
        """None if the upload may go on; else the refusal (status, code, message, headers)."""
        assert self.authenticate is not None
        if self.limiter is not None and (wait := self.limiter.retry_after(client)) is not None:
            message = f"too many unknown tokens from this address; retry after {wait} s"
            return 429, "too_many_failed_tokens", message, {"retry-after": str(wait)}
        if token is None:
            return 401, "unauthorized", "missing bearer token (Authorization: Bearer ...)", {}
        try:
            known = await to_thread.run_sync(self.authenticate, token)
        except Exception:  # the database is down: the route answers that (503) itself
            log.warning("upload admission could not check a token", exc_info=True)
            return None
        if not known:
            if self.limiter is not None:
                self.limiter.failed(client)
            return 401, "unauthorized", "unknown or revoked token", {}
        return None

    async def _refuse(self, send: Send) -> None:
        retry = self.slots.retry_after_s()
        busy = f"{self.slots.admitted} uploads in progress"
        message = f"the service is busy ({busy}); retry after {retry} s"
        await _answer(send, 503, "overloaded", message, {"retry-after": str(retry)})


def _bearer(scope: Scope) -> str | None:
    header = dict(scope.get("headers", [])).get(b"authorization", b"").decode("latin-1")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def _answer(
    send: Send, status: int, code: str, message: str, headers: dict[str, str]
) -> None:
    body = json.dumps(error_body(code, message)).encode()
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)),
        # The body was not read: the connection cannot carry another request.
        (b"connection", b"close"),
        *((k.encode(), v.encode()) for k, v in headers.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
