"""API errors: every failure is JSON {"error": {"code", "message", "field"}}, never a traceback."""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError as DatabaseDataError
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from qc_model.decode import DecodeError
from qc_model.errors import DataError
from serving.core.schemas import ErrorPublic
from serving.store.storage import StorageError

log = logging.getLogger("kito.serving")
# Seconds a client should wait before retrying after a 503 for an unavailable database or photo
# store: long enough not to hammer a recovering dependency, short enough for a phone to retry.
RETRY_AFTER_UNAVAILABLE_S = 5


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers
        super().__init__(message)


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field}}


def _json(
    status: int, code: str, message: str, field: str | None = None, **kw: Any
) -> JSONResponse:
    return JSONResponse(error_body(code, message, field), status_code=status, **kw)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}
_RETRY_LATER = {"Retry-After": str(RETRY_AFTER_UNAVAILABLE_S)}
_RETRY_AFTER_HEADER = {
    "Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}
}


def _documented(description: str, **extra: Any) -> dict[str, Any]:
    return {"model": ErrorPublic, "description": description, **extra}


# Answers any operation can give, documented on all of them (the OpenAPI is checked against
# the running service by schemathesis: tests/reliability/test_schemathesis.py).
COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _documented(
        "malformed request: unreadable body or multipart, control characters in the URL"
    ),
    429: _documented("too many unknown tokens from this address", headers=_RETRY_AFTER_HEADER),
    503: _documented(
        "database or photo store unavailable, or too many uploads waiting",
        headers=_RETRY_AFTER_HEADER,
    ),
}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        return _json(exc.status, exc.code, exc.message, exc.field, headers=headers or None)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        err = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        # loc is like ("body", "design_id") or ("query", "limit"); the first part is the place.
        loc = [str(p) for p in err.get("loc", ())[1:]]
        return _json(422, "validation_error", str(err.get("msg")), ".".join(loc) or None)

    @app.exception_handler(DecodeError)
    async def _decode(_: Request, exc: DecodeError) -> JSONResponse:
        return _json(422, exc.code, exc.message, getattr(exc, "field", None))

    @app.exception_handler(DataError)
    async def _data(_: Request, exc: DataError) -> JSONResponse:
        return _json(422, "invalid_input", str(exc))

    @app.exception_handler(StorageError)
    async def _storage(_: Request, exc: StorageError) -> JSONResponse:
        log.error("photo store failed: %s", exc)
        return _json(
            503,
            "storage_unavailable",
            "photos cannot be stored now; retry later",
            headers=_RETRY_LATER,
        )

    @app.exception_handler(DatabaseDataError)
    async def _database_refused(_: Request, exc: DatabaseDataError) -> JSONResponse:
        # A value the database cannot hold that no schema check caught (a backstop: the
        # request guards and schemas refuse these first, with the field named).
        log.warning("database refused a value: %s", str(exc.orig).splitlines()[0])
        return _json(422, "invalid_value", "a value in the request cannot be stored")

    @app.exception_handler(DBAPIError)
    @app.exception_handler(DisconnectionError)
    @app.exception_handler(PoolTimeoutError)
    async def _database(request: Request, exc: Exception) -> JSONResponse:
        # OperationalError (server down, connection refused, lock timeout), InterfaceError (a
        # connection closed under us), pool exhaustion: the database, not the request, failed.
        if isinstance(exc, DBAPIError) and not _unavailable(exc):
            return _internal(request, exc)
        log.error("database unavailable: %s", (str(exc).splitlines() or [""])[0])
        return _json(
            503,
            "database_unavailable",
            "the database cannot be reached; retry later",
            headers=_RETRY_LATER,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        headers = exc.headers
        if exc.status_code == 405:
            # Starlette names only the first route that matched the path; GET and POST on one
            # path are separate routes here, so list the methods of all of them.
            headers = {**(headers or {}), "Allow": ", ".join(_allowed_methods(request))}
        return _json(exc.status_code, code, str(exc.detail), headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return _internal(request, exc)


def _allowed_methods(request: Request) -> list[str]:
    """The methods the API documents for this path. A literal path (/models/rollback) is the
    resource meant, not a template that also matches it (/models/{version})."""
    paths: dict[str, dict[str, Any]] = request.app.openapi()["paths"]
    path = request.url.path
    if path in paths:
        documented = [paths[path]]
    else:
        documented = [ops for p, ops in paths.items() if _template(p).fullmatch(path)]
    methods = {m.upper() for ops in documented for m in ops}
    return [m for m in ("GET", "POST", "PUT", "PATCH", "DELETE") if m in methods]


def _template(path: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path)))


def _internal(request: Request, exc: Exception) -> JSONResponse:
    # A bug, not bad input: log it with the traceback, answer without one.
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _json(500, "internal_error", "internal error; it has been logged")


def _unavailable(exc: DBAPIError) -> bool:
    """Whether a driver error means "the database is not there now" rather than a bug."""
    return exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)
