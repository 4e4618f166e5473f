"""What `kito models ...` does, kept out of the CLI module: the registry from the command line.

Same functions as the admin API (serving.registry.registry); promotions load the package in this
process first, with the service's settings, so that a package the service would refuse is
refused here.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from serving.core.schemas import ModelPublic
from serving.core.settings import Settings, load_settings
from serving.db.migrate import migrate
from serving.db.models import RegisteredModel
from serving.db.session import make_engine, make_sessionmaker
from serving.registry import registry
from serving.registry.live_models import PackageLoader
from serving.store.storage import ObjectStore
from serving.store.stores import package_store


@contextmanager
def open_registry() -> Iterator[tuple[Session, ObjectStore, Settings]]:
    settings = load_settings()
    migrate(settings)
    engine = make_engine(settings.db_url)
    try:
        with make_sessionmaker(engine)() as session:
            yield session, package_store(settings), settings
    finally:
        engine.dispose()


def who() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name in containers without a passwd entry
        return "cli"


def _loader(store: ObjectStore, settings: Settings) -> Callable[[RegisteredModel], Any]:
    return PackageLoader(
        store,
        settings.model_cache_path,
        settings.threshold_overrides,
        settings.decode_long_side,
    )


def summary_rows(rows: list[RegisteredModel]) -> list[dict[str, str]]:
    out = []
    for r in rows:
        gate = (r.metrics or {}).get("gate") or {}
        holdout = ((r.metrics or {}).get("holdout") or {}).get("macro_f1")
        out.append(
            {
                "version": r.version,
                "state": r.state,
                "created": r.created_at.strftime("%Y-%m-%d %H:%M"),
                "promoted": r.promoted_at.strftime("%Y-%m-%d %H:%M") if r.promoted_at else "",
                "by": r.promoted_by or "",
                "parent": r.parent_version or "",
                "holdout F1": f"{holdout:.3f}" if isinstance(holdout, float) else "",
                "gate": "" if "passed" not in gate else "passed" if gate["passed"] else "FAILED",
                "refused": (r.refusal_reason or "")[:60],
            }
        )
    return out


def list_models(state: str | None) -> list[dict[str, str]]:
    with open_registry() as (session, _, _):
        return summary_rows(registry.listing(session, state))


def show_model(version: str) -> str:
    with open_registry() as (session, _, _):
        row = registry.get(session, version)
        return json.dumps(ModelPublic.model_validate(row).model_dump(mode="json"), indent=2)


def register_package(folder: Path, checkpoint: Path | None, promote: bool) -> str:
    with open_registry() as (session, store, settings):
        row, created = registry.register(session, store, folder, checkpoint=checkpoint)
        line = f"{'registered' if created else 'already registered:'} {row.version} ({row.state})"
        if promote:
            row = registry.promote(session, row.version, by=who(), verify=_loader(store, settings))
            line += f"; promoted to {row.state}"
        return line


def promote_model(version: str, force: bool, note: str | None) -> str:
    with open_registry() as (session, store, settings):
        previous = registry.in_state(session, "champion")
        row = registry.promote(
            session, version, by=who(), verify=_loader(store, settings), force=force, note=note
        )
        was = f" (was {previous.version})" if previous and previous.version != version else ""
        return f"{row.version} is the champion{was}; running services swap within seconds"


def rollback_model(to: str | None, reason: str | None) -> str:
    with open_registry() as (session, store, settings):
        current = registry.in_state(session, "champion")
        row = registry.rollback(
            session, to=to, by=who(), verify=_loader(store, settings), reason=reason
        )
        return f"rolled back {current.version if current else '-'} -> {row.version} (champion)"


def shadow_model(version: str | None) -> str:
    with open_registry() as (session, store, settings):
        row = registry.set_shadow(session, version, by=who(), verify=_loader(store, settings))
        return f"{row.version} runs in shadow" if row else "no shadow model now"


def report_shadow(version: str | None) -> dict[str, Any]:
    from serving.registry.shadow import shadow_report

    with open_registry() as (session, _, _):
        if version is None:
            shadow = registry.in_state(session, "shadow")
            if shadow is None:
                raise registry.RegistryError("no shadow model; name one with --version")
            version = shadow.version
        return shadow_report(session, version)
