"""Users: who am I (anyone with a token), and user management (admin only).

A new user's token is shown once, in the answer that creates it; only its hash is stored.
Users are never deleted (inspections, decisions and payouts name them): an admin deactivates
one, and its token stops working at once. Every change is written to the audit log.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi import Path as PathParam
from sqlalchemy import func, select

from qc_model.errors import DataError
from serving.core.audit import record
from serving.core.auth import AdminUser, CurrentUser, create_user
from serving.core.errors import ApiError
from serving.core.schemas import (
    DB_INT_MAX,
    ErrorPublic,
    UserCreate,
    UserCreated,
    UserDetail,
    UserPublic,
    UsersPublic,
    UserUpdate,
)
from serving.db.models import User
from serving.db.session import SessionDep

router = APIRouter(prefix="/api/v1/users", tags=["users"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"model": ErrorPublic} for s in (401, 403, 404, 409, 422)
}


@router.get("/me", response_model=UserPublic, responses={401: {"model": ErrorPublic}})
def read_me(user: CurrentUser) -> UserPublic:
    return UserPublic.model_validate(user)


@router.post("", status_code=201, response_model=UserCreated, responses=_ERRORS)
def create(body: UserCreate, admin: AdminUser, session: SessionDep) -> UserCreated:
    """Add a user; the answer carries its API token, the only time it is shown."""
    try:
        user, token = create_user(session, name=body.name, role=body.role, actor=admin)
    except DataError as exc:  # e.g. a name of spaces only
        raise ApiError(422, "bad_user", str(exc), "name") from None
    detail = UserDetail.model_validate(user).model_dump()
    return UserCreated.model_validate({**detail, "token": token})


@router.get("", response_model=UsersPublic, responses=_ERRORS)
def list_users(
    _: AdminUser,
    session: SessionDep,
    role: str | None = None,
    active: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> UsersPublic:
    conds = []
    if role is not None:
        conds.append(User.role == role)
    if active is not None:
        conds.append(User.active == active)
    count = session.scalar(select(func.count()).select_from(User).where(*conds)) or 0
    rows = session.scalars(
        select(User).where(*conds).order_by(User.id).limit(limit).offset(offset)
    ).all()
    return UsersPublic(data=[UserDetail.model_validate(u) for u in rows], count=count)


@router.patch("/{user_id:int}", response_model=UserDetail, responses=_ERRORS)
def update(
    user_id: Annotated[int, PathParam(ge=1, le=DB_INT_MAX)],
    body: UserUpdate,
    admin: AdminUser,
    session: SessionDep,
) -> UserDetail:
    """Deactivate (or reactivate) a user. An admin cannot deactivate themselves."""
    user = session.get(User, user_id)
    if user is None:
        raise ApiError(404, "not_found", "no such user")
    if user.id == admin.id and not body.active:
        raise ApiError(409, "self_deactivation", "an admin cannot deactivate their own account")
    if user.active != body.active:
        user.active = body.active
        record(
            session,
            actor=admin,
            action="user.activate" if body.active else "user.deactivate",
            entity_type="user",
            entity_id=user.id,
        )
        session.commit()
    return UserDetail.model_validate(user)
