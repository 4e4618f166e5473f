"""Who am I: lets a client check its token and role."""

from __future__ import annotations

from fastapi import APIRouter

from serving.auth import CurrentUser
from serving.schemas import ErrorPublic, UserPublic

router = APIRouter(prefix="/api/v1/users", tags=["users"])


@router.get("/me", response_model=UserPublic, responses={401: {"model": ErrorPublic}})
def read_me(user: CurrentUser) -> UserPublic:
    return UserPublic.model_validate(user)
