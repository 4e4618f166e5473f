"""Request body limits: refuse oversized uploads before they are spooled to disk, and bodies
that take too long to arrive."""

from __future__ import annotations

import time

import anyio
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartParser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.core.errors import error_body


def spool_uploads_in_memory(max_file_bytes: int) -> None:
    """Keep each uploaded file of up to `max_file_bytes` in memory while the form is parsed.

    Starlette spools a file part past 1 MB to a temporary file, then writes each further chunk
    through the thread pool: 5.2 ms of CPU for a 1.8 MB photo against 0.9 ms in memory
    (bench/bench_upload_parse.py; docs/BENCHMARKS.md, "bench_serving.py"). The upload route
    reads every photo into memory right after parsing anyway, and BodyLimitMiddleware bounds
    the body first, so the disk copy saved no memory. Starlette reads the size from the
    parser's class: one setting for the process.
    """
    MultiPartParser.spool_max_size = max(MultiPartParser.spool_max_size, max_file_bytes)


class BodyLimitMiddleware:
    """413 as JSON when Content-Length says too much; for chunked bodies, once the count passes it.

    Pure ASGI so that the check runs before multipart parsing writes anything to temp files.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # FastAPI passes HTTPException from body parsing through to our handlers.
                    raise HTTPException(413, self._message())
            return message

        await self.app(scope, counted, send)

    def _message(self) -> str:
        return f"request body over {self.max_bytes:,} bytes"

    async def _refuse(self, send: Send) -> None:
        import json

        body = json.dumps(error_body("payload_too_large", self._message())).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class BodyDeadlineMiddleware:
    """408 `request_timeout` for a request whose body has not fully arrived `timeout_s` after
    its first byte was asked for: a client trickling bytes cannot hold a connection, a worker
    thread and an upload slot for as long as it likes. The slot is given back as the request
    ends (serving.inspection.admission)."""

    def __init__(self, app: ASGIApp, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline: float | None = None
        done = False

        async def timed() -> Message:
            nonlocal deadline, done
            if done:
                return await receive()  # body complete: only a disconnect is left to wait for
            if deadline is None:
                deadline = time.monotonic() + self.timeout_s
            with anyio.move_on_after(max(0.0, deadline - time.monotonic())) as scope_:
                message = await receive()
            if scope_.cancelled_caught:
                raise HTTPException(
                    408, f"the request body did not arrive within {self.timeout_s:g} s"
                )
            if message["type"] != "http.request" or not message.get("more_body", False):
                done = True
            return message

        await self.app(scope, timed, send)
