"""Users and bearer API tokens: tokens are random, shown once, stored only as sha256 hashes."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from qc_model.errors import DataError
from serving.core.audit import record
from serving.core.errors import ApiError
from serving.core.ratelimit import FailedAuthLimiter
from serving.db.models import ROLES, User
from serving.db.session import SessionDep

TOKEN_PREFIX = "kito_"


def new_token() -> str:
    # 32 random bytes: a plain sha256 of it is as good as a slow password hash, because nobody
    # can enumerate 2**256 candidates.
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_user(
    session: Session, *, name: str, role: str, actor: User | None = None
) -> tuple[User, str]:
    """Add a user and return it with its token (the only time the token is visible)."""
    name = name.strip()
    if role not in ROLES:
        raise DataError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if not name or len(name) > 120:
        raise DataError("name must be 1 to 120 characters")
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in name):
        # NUL would be stored by SQLite and refused by PostgreSQL: one answer for both.
        raise DataError("name must not contain control characters")
    token = new_token()
    user = User(name=name, role=role, token_hash=hash_token(token))
    session.add(user)
    session.flush()  # the id, for the audit entry written in the same transaction
    record(
        session,
        actor=actor,
        action="user.create",
        entity_type="user",
        entity_id=user.id,
        role=role,
        name=name,
    )
    session.commit()
    return user, token


def user_for_token(session: Session, token: str) -> User | None:
    digest = hash_token(token)
    user = session.scalars(select(User).where(User.token_hash == digest)).first()
    # The lookup is by hash (an index probe); the compare is constant-time all the same.
    if user is None or not hmac.compare_digest(user.token_hash, digest) or not user.active:
        return None
    return user


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "missing bearer token (Authorization: Bearer ...)")
    return token.strip()


def get_current_user(request: Request, session: SessionDep) -> User:
    limiter: FailedAuthLimiter | None = getattr(request.app.state, "auth_limiter", None)
    client = request.client.host if request.client else "unknown"
    if limiter is not None and (wait := limiter.retry_after(client)) is not None:
        # Refused even with a good token: otherwise a blocked guesser learns which try worked.
        raise ApiError(
            429,
            "too_many_failed_tokens",
            f"too many unknown tokens from this address; retry after {wait} s",
            headers={"Retry-After": str(wait)},
        )
    user = user_for_token(session, _bearer(request))
    if user is None:
        if limiter is not None:
            limiter.failed(client)
        raise ApiError(401, "unauthorized", "unknown or revoked token")
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


def require_roles(*roles: str) -> Callable[[User], User]:
    """Dependency: the current user, if their role is one of `roles`; else 403."""

    def check(user: CurrentUser) -> User:
        if user.role not in roles:
            raise ApiError(403, "forbidden", f"this needs role {' or '.join(roles)}")
        return user

    return check


StaffUser = Annotated[User, Depends(require_roles("qc", "admin"))]
AdminUser = Annotated[User, Depends(require_roles("admin"))]
