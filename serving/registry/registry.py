"""The model registry: packages with their provenance and one state each (docs/REGISTRY.md).

candidate -> champion (promote; the old champion retires), candidate -> shadow (at most one),
champion -> retired with the previous champion restored (rollback, or a process that refuses
to load it). Each change is one transaction with its audit-log entry. Nothing here loads a
model: callers pass `verify`, which loads the package and raises `PackageError` if it cannot
be served, so that a package no process can load never becomes champion or shadow.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from qc_model.errors import DataError
from qc_model.package import PackageError
from serving.core import audit
from serving.db.models import RegisteredModel, User
from serving.registry.model_store import put_package
from serving.store.storage import ObjectStore

Verify = Callable[[RegisteredModel], None]
Actor = User | None


class RegistryError(DataError):
    """A registry change that cannot be made; `status` is the HTTP status the API answers."""

    def __init__(self, message: str, *, status: int = 409, code: str = "conflict") -> None:
        super().__init__(message)
        self.status, self.code = status, code


def _now() -> datetime:
    return datetime.now(UTC)


def _by(actor: Actor, by: str | None) -> str:
    if by:
        return by[:120]
    return f"{actor.name} (user {actor.id})"[:120] if actor is not None else "system"


def get(session: Session, version: str) -> RegisteredModel:
    row = session.scalars(select(RegisteredModel).where(RegisteredModel.version == version)).first()
    if row is None:
        raise RegistryError(f"no model {version!r} in the registry", status=404, code="not_found")
    return row


def in_state(session: Session, state: str) -> RegisteredModel | None:
    return session.scalars(select(RegisteredModel).where(RegisteredModel.state == state)).first()


def listing(session: Session, state: str | None = None) -> list[RegisteredModel]:
    stmt = select(RegisteredModel).order_by(RegisteredModel.created_at.desc(), RegisteredModel.id)
    if state is not None:
        stmt = stmt.where(RegisteredModel.state == state)
    return list(session.scalars(stmt).all())


def register(
    session: Session,
    store: ObjectStore,
    folder: Path,
    *,
    checkpoint: Path | None = None,
    parent_version: str | None = None,
    dataset_versions: dict[str, str] | None = None,
    metrics: dict[str, Any] | None = None,
    actor: Actor = None,
) -> tuple[RegisteredModel, bool]:
    """Add the package in `folder` as a candidate; (row, created). Registering the same package
    again returns its row; another package under a registered version is refused."""
    stored = put_package(store, folder, checkpoint)
    meta = stored.meta
    existing = session.scalars(
        select(RegisteredModel).where(RegisteredModel.version == stored.version)
    ).first()
    if existing is not None:
        if (existing.sha256, existing.meta_sha256) != (stored.sha256, stored.meta_sha256):
            raise RegistryError(
                f"version {stored.version} is registered already with other files "
                f"(model.onnx {existing.sha256[:12]}…); export under a new name"
            )
        if stored.checkpoint_sha256 and not existing.checkpoint_sha256:
            existing.checkpoint_sha256 = stored.checkpoint_sha256
            session.commit()
        return existing, False
    row = RegisteredModel(
        version=stored.version,
        sha256=stored.sha256,
        meta_sha256=stored.meta_sha256,
        checkpoint_sha256=stored.checkpoint_sha256,
        state="candidate",
        parent_version=parent_version,
        taxonomy_version=meta.taxonomy_version,
        dataset_versions={**meta.dataset_versions, **(dataset_versions or {})},
        training=dict(meta.training),
        git_commit=(meta.git_commit or "")[:64] or None,
        metrics={**meta.metrics, **(metrics or {})},
        built_at=meta.created_at,
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError:  # registered by someone else a moment ago
        session.rollback()
        return register(session, store, folder, checkpoint=checkpoint, actor=actor)[0], False
    audit.record(
        session,
        actor=actor,
        action="model.register",
        entity_type="model",
        entity_id=row.version,
        sha256=row.sha256,
        parent=parent_version,
    )
    session.commit()
    return row, True


def _verified(session: Session, row: RegisteredModel, verify: Verify | None) -> None:
    """Run `verify`; a refusal is marked on the row (committed) and raised as a conflict."""
    if verify is None:
        return
    try:
        verify(row)
    except PackageError as exc:
        mark_refused(session, row.version, str(exc))
        raise RegistryError(
            f"model {row.version} cannot be loaded: {exc}", code="refused"
        ) from None


def _commit(session: Session, what: str) -> None:
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise RegistryError(
            f"another registry change happened at the same time; {what} again"
        ) from None


def promote(
    session: Session,
    version: str,
    *,
    actor: Actor = None,
    by: str | None = None,
    verify: Verify | None = None,
    force: bool = False,
    note: str | None = None,
) -> RegisteredModel:
    """Make `version` the champion; the champion it replaces retires.

    A candidate that failed the promotion gate is refused unless `force` (with a `note`,
    kept in the audit log): only a deliberate person can send a worse model to artisans.
    """
    row = get(session, version)
    if row.state == "champion":
        return row
    gate = (row.metrics or {}).get("gate") or {}
    if gate.get("passed") is False and not force:
        reasons = "; ".join(gate.get("reasons") or []) or "see its metrics"
        raise RegistryError(f"model {version} failed the promotion gate: {reasons}", code="gate")
    if force and not (note or "").strip():
        raise RegistryError("a forced promotion needs a note saying why", status=422, code="note")
    _verified(session, row, verify)
    old = in_state(session, "champion")
    if old is not None:
        old.state = "retired"
        session.flush()  # the old champion leaves the unique index before the new one enters
    was = row.state
    row.state, row.promoted_at, row.promoted_by = "champion", _now(), _by(actor, by)
    row.refusal_reason, row.refused_at = None, None
    audit.record(
        session,
        actor=actor,
        action="model.promote",
        entity_type="model",
        entity_id=version,
        previous=old.version if old is not None else None,
        was=was,
        by=row.promoted_by,
        forced=force,
        note=note,
    )
    _commit(session, "promote")
    return row


def previous_champion(session: Session, champion: RegisteredModel) -> RegisteredModel | None:
    """The model that was champion before `champion` (latest earlier promotion, not refused)."""
    stmt = (
        select(RegisteredModel)
        .where(
            RegisteredModel.state == "retired",
            RegisteredModel.promoted_at.is_not(None),
            RegisteredModel.refusal_reason.is_(None),
            RegisteredModel.id != champion.id,
        )
        .order_by(RegisteredModel.promoted_at.desc())
    )
    if champion.promoted_at is not None:
        stmt = stmt.where(RegisteredModel.promoted_at < champion.promoted_at)
    return session.scalars(stmt).first()


def rollback(
    session: Session,
    *,
    to: str | None = None,
    actor: Actor = None,
    by: str | None = None,
    verify: Verify | None = None,
    reason: str | None = None,
) -> RegisteredModel:
    """Retire the champion and restore the previous one (or `to`, a retired model)."""
    current = in_state(session, "champion")
    if current is None:
        raise RegistryError("there is no champion to roll back")
    target = get(session, to) if to else previous_champion(session, current)
    if target is None:
        raise RegistryError(f"{current.version} has no earlier champion to roll back to")
    if target.state != "retired" or target.promoted_at is None:
        raise RegistryError(f"{target.version} was never champion, or is not retired")
    _verified(session, target, verify)
    current.state = "retired"
    session.flush()
    # promoted_at stays: rolling back again goes further back in time, not back and forth.
    target.state = "champion"
    audit.record(
        session,
        actor=actor,
        action="model.rollback",
        entity_type="model",
        entity_id=target.version,
        previous=current.version,
        by=_by(actor, by),
        reason=reason,
    )
    _commit(session, "roll back")
    return target


def set_shadow(
    session: Session,
    version: str | None,
    *,
    actor: Actor = None,
    by: str | None = None,
    verify: Verify | None = None,
) -> RegisteredModel | None:
    """Run `version` in shadow beside the champion (None: stop shadowing); the old shadow
    goes back to candidate."""
    old = in_state(session, "shadow")
    row = get(session, version) if version else None
    if row is not None:
        if row.state == "champion":
            raise RegistryError(f"{version} is the champion; it cannot shadow itself")
        if row.state == "shadow":
            return row
        _verified(session, row, verify)
    if old is not None:
        old.state = "candidate"
        session.flush()
    if row is not None:
        row.state = "shadow"
    audit.record(
        session,
        actor=actor,
        action="model.shadow",
        entity_type="model",
        entity_id=version or (old.version if old else "-"),
        previous=old.version if old else None,
        by=_by(actor, by),
        stopped=row is None,
    )
    _commit(session, "set the shadow")
    return row


def mark_refused(session: Session, version: str, reason: str) -> None:
    """Record that a process could not load `version`. A champion so refused is rolled back
    to the previous one and a shadow goes back to candidate, so that every process (and every
    process started later) serves a model that loads."""
    row = get(session, version)
    row.refusal_reason, row.refused_at = reason[:1000], _now()
    audit.record(
        session,
        actor=None,
        action="model.refuse",
        entity_type="model",
        entity_id=version,
        reason=reason[:500],
        state=row.state,
    )
    if row.state == "shadow":
        row.state = "candidate"
    elif row.state == "champion":
        target = previous_champion(session, row)
        row.state = "retired"
        session.flush()
        if target is not None:
            target.state = "champion"
            audit.record(
                session,
                actor=None,
                action="model.rollback",
                entity_type="model",
                entity_id=target.version,
                previous=version,
                by="system",
                reason=f"{version} refused at load",
            )
    _commit(session, "refuse")


def ensure_champion(session: Session, store: ObjectStore, bundled: Path) -> str | None:
    """If the registry has no champion, register the bundled package and make it champion.

    Idempotent and safe to run from several starting processes. Returns a reason when there is
    no champion afterwards (no bundled package, or it cannot be read)."""
    if in_state(session, "champion") is not None:
        return None
    if not bundled.is_dir():
        return f"model package not found: {bundled} (and the registry has no champion)"
    try:
        row, _ = register(session, store, bundled)
    except DataError as exc:
        return f"model package {bundled} cannot be registered: {exc}"
    if row.refusal_reason is not None:
        return f"the bundled package {row.version} was refused: {row.refusal_reason}"
    if in_state(session, "champion") is None:
        try:
            promote(session, row.version, by="bootstrap (bundled package)")
        except RegistryError:
            session.rollback()  # another process bootstrapped it at the same moment
    return None
