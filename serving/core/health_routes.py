"""Liveness, readiness (model and refusals, database, catalog, photo store), Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text

from serving.store.storage import StorageError

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up and answering. Says nothing about its dependencies."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "not ready; details say why"}})
def readyz(request: Request) -> JSONResponse:
    """Ready to inspect: model loaded, database reachable, catalog loaded, photo store writable."""
    state = request.app.state
    checks: dict[str, dict[str, Any]] = {}
    status = state.inspector_status
    checks["model"] = {"ok": status.inspector is not None, "detail": status.reason}
    models = getattr(state, "models", None)
    if models is not None:
        # The registry's view: what this process serves and what it refused to load (a refusal
        # does not make the process unready while the champion before it keeps serving).
        champion, shadow = models.champion, models.shadow
        checks["model"] |= {
            "version": champion.version if champion else None,
            "shadow": shadow.version if shadow else None,
            # A snapshot: the watcher thread may add a refusal while this request reads them.
            "refused": [r.as_dict() for r in list(models.refusals)],
        }
    try:
        with state.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = {"ok": True, "detail": state.engine.url.get_backend_name()}
    except Exception as exc:  # any failure to reach the database means "not ready"
        checks["database"] = {"ok": False, "detail": f"{type(exc).__name__}: {exc}"[:300]}
    n = len(state.catalog)
    checks["catalog"] = {"ok": n > 0, "detail": f"{n} designs"}
    try:
        state.store.check()
        checks["photo_store"] = {"ok": True, "detail": "writable"}
    except StorageError as exc:
        checks["photo_store"] = {"ok": False, "detail": str(exc)}
    ready = all(c["ok"] for c in checks.values())
    body = {"status": "ready" if ready else "not_ready", "checks": checks}
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    return request.app.state.metrics.render()
