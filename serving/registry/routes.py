"""The model registry (admin): list, show, promote, roll back, shadow, and the shadow report.

A change is committed in the registry; this process swaps at once, every other process at its
next registry poll (KITO_REGISTRY_POLL_S), between requests.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from serving.core.auth import require_roles
from serving.core.errors import ApiError
from serving.core.schemas import (
    ErrorPublic,
    ModelPublic,
    ModelsPublic,
    PromoteRequest,
    RollbackRequest,
)
from serving.db.models import MODEL_STATES, RegisteredModel, User
from serving.db.session import SessionDep
from serving.registry import registry
from serving.registry.shadow import shadow_report

router = APIRouter(prefix="/api/v1/models", tags=["models"])

AdminUser = Annotated[User, Depends(require_roles("admin"))]
_ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"model": ErrorPublic} for s in (401, 403, 404, 409, 422)
}


@contextmanager
def _registry_errors() -> Iterator[None]:
    try:
        yield
    except registry.RegistryError as exc:
        raise ApiError(exc.status, exc.code, str(exc)) from None


def _verify(request: Request) -> Callable[[RegisteredModel], Any]:
    """Load the package here before the registry changes (and keep it ready for the swap)."""
    models = getattr(request.app.state, "models", None)
    return models.verify if models is not None else request.app.state.package_loader


def _swap_soon(request: Request) -> None:
    models = getattr(request.app.state, "models", None)
    if models is not None:
        threading.Thread(target=models.sync, name="kito-registry-now", daemon=True).start()


def _public(row: RegisteredModel) -> ModelPublic:
    return ModelPublic.model_validate(row)


@router.get("", response_model=ModelsPublic, responses=_ERRORS)
def list_models(
    _: AdminUser,
    session: SessionDep,
    state: Annotated[str | None, Query(description=" | ".join(MODEL_STATES))] = None,
) -> ModelsPublic:
    """Newest first."""
    if state is not None and state not in MODEL_STATES:
        raise ApiError(422, "validation_error", f"state must be one of {MODEL_STATES}", "state")
    rows = registry.listing(session, state)
    return ModelsPublic(data=[_public(r) for r in rows], count=len(rows))


@router.get("/shadow-report", responses=_ERRORS)
def read_shadow_report(
    _: AdminUser,
    session: SessionDep,
    version: Annotated[str | None, Query(description="default: the current shadow")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> dict[str, Any]:
    """Where the shadow and the champion disagreed, over the inspections both judged."""
    if version is None:
        shadow = registry.in_state(session, "shadow")
        if shadow is None:
            raise ApiError(404, "not_found", "no shadow model; name one with ?version=")
        version = shadow.version
    return shadow_report(session, version, limit)


@router.post("/rollback", response_model=ModelPublic, responses=_ERRORS)
def rollback_model(
    request: Request, user: AdminUser, session: SessionDep, body: RollbackRequest | None = None
) -> ModelPublic:
    """Retire the champion and restore the previous one (or `to`)."""
    body = body or RollbackRequest(to=None, reason=None)
    with _registry_errors():
        row = registry.rollback(
            session, to=body.to, actor=user, verify=_verify(request), reason=body.reason
        )
    _swap_soon(request)
    return _public(row)


@router.delete("/shadow", status_code=204, responses=_ERRORS)
def stop_shadow(request: Request, user: AdminUser, session: SessionDep) -> None:
    with _registry_errors():
        registry.set_shadow(session, None, actor=user)
    _swap_soon(request)


@router.get("/{version}", response_model=ModelPublic, responses=_ERRORS)
def read_model(version: str, _: AdminUser, session: SessionDep) -> ModelPublic:
    with _registry_errors():
        return _public(registry.get(session, version))


@router.post("/{version}/promote", response_model=ModelPublic, responses=_ERRORS)
def promote_model(
    version: str,
    request: Request,
    user: AdminUser,
    session: SessionDep,
    body: PromoteRequest | None = None,
) -> ModelPublic:
    """Make `version` the champion after loading it here; 409 if it fails the promotion gate
    (unless forced with a note) or cannot be loaded (the registry then marks the refusal)."""
    body = body or PromoteRequest(force=False, note=None)
    with _registry_errors():
        row = registry.promote(
            session,
            version,
            actor=user,
            verify=_verify(request),
            force=body.force,
            note=body.note,
        )
    _swap_soon(request)
    return _public(row)


@router.post("/{version}/shadow", response_model=ModelPublic, responses=_ERRORS)
def shadow_model(
    version: str, request: Request, user: AdminUser, session: SessionDep
) -> ModelPublic:
    """Run `version` beside the champion on live inspections; it never decides a verdict."""
    with _registry_errors():
        row = registry.set_shadow(session, version, actor=user, verify=_verify(request))
    _swap_soon(request)
    assert row is not None
    return _public(row)
