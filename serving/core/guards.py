"""Request guards that run before routing: control characters in the URL, an oversized header
block, response headers that stop browsers from second-guessing what the service sends."""

from __future__ import annotations

import json
import re
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Receive, Scope, Send

from serving.core.errors import error_body

# C0 controls and DEL. NUL above all: PostgreSQL refuses it in text, so a %00 in an id or a
# filter would otherwise reach the database as a driver error instead of a clear 400.
_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")
# What h11 (uvicorn's pure-Python parser) accepts for a request line and its headers. With
# httptools installed uvicorn has no such bound, so the service applies h11's own.
MAX_HEADER_BYTES = 16 * 1024


class UrlGuardMiddleware:
    """400 as JSON when the path or the query string holds a control character (raw or
    percent-encoded): no id, filter or date the API takes can contain one; and when the
    request's headers together exceed MAX_HEADER_BYTES."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        problem = _problem(scope) if scope["type"] == "http" else None
        if problem is not None:
            body = json.dumps(error_body(*problem)).encode()
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
            ]
            await send({"type": "http.response.start", "status": 400, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def _problem(scope: Scope) -> tuple[str, str] | None:
    if _has_control(scope):
        return "bad_url", "control characters are not allowed in the URL"
    size = sum(len(name) + len(value) + 4 for name, value in scope.get("headers", ()))
    if size > MAX_HEADER_BYTES:
        return "headers_too_large", f"the request's headers exceed {MAX_HEADER_BYTES} bytes"
    return None


def _has_control(scope: Scope) -> bool:
    path = scope.get("raw_path") or str(scope.get("path", "")).encode("utf-8", "surrogateescape")
    query: bytes = scope.get("query_string", b"")
    return any(_CONTROL.search(unquote_to_bytes(part)) for part in (path, query))
