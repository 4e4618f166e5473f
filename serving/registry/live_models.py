"""Hot swap: every service process serves the registry's champion (and runs its shadow).

A watcher thread asks the registry every `registry_poll_s` seconds which versions are champion
and shadow. A new one is unpacked and loaded in that thread while requests carry on with the
current inspector; then one reference is replaced. A request takes the inspector once, when it
starts (serving.core.deps), so it uses one model from start to finish and its verdict names that
model. A package that cannot be loaded is refused: this process keeps serving what it serves,
/readyz shows the refusal, and the registry marks it (a refused champion is rolled back there,
so every other process, and every process started later, serves the previous one too).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from qc_model.errors import DataError
from qc_model.package import PackageError
from serving.db.models import RegisteredModel
from serving.inspection.pipeline import Inspector, InspectorStatus
from serving.registry import registry
from serving.registry.model_store import unpack
from serving.store.storage import ObjectStore

log = logging.getLogger("kito.serving")


@dataclass(frozen=True)
class Loaded:
    version: str
    sha256: str
    inspector: Inspector


@dataclass(frozen=True)
class Refusal:
    version: str
    reason: str
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def as_dict(self) -> dict[str, str]:
        return {"version": self.version, "reason": self.reason, "at": self.at.isoformat()}


class SettingsRefusal(PackageError):
    """The package may be fine, but this process's settings (threshold overrides) cannot
    serve it; at start this stops the service, as a misspelt override always has."""


class PackageLoader:
    """Registry row -> a ready inspector, or `PackageError` saying why it cannot serve."""

    def __init__(
        self,
        store: ObjectStore,
        cache_dir: Path,
        threshold_overrides: Mapping[str, tuple[float, float]] | None = None,
        measure_floor: int | None = None,
    ) -> None:
        self.store, self.cache_dir, self.overrides = store, cache_dir, threshold_overrides
        self.measure_floor = measure_floor  # KITO_DECODE_LONG_SIDE (ModelInspector)

    def __call__(self, row: RegisteredModel) -> Loaded:
        from serving.inspection.model_inspector import build_inspector

        folder = unpack(self.store, self.cache_dir, row.sha256, row.meta_sha256)
        try:
            inspector = build_inspector(folder, self.overrides, self.measure_floor)
        except PackageError:
            raise
        except DataError as exc:  # threshold overrides the package cannot take
            raise SettingsRefusal(str(exc)) from None
        except Exception as exc:  # whatever else onnxruntime or numpy raise on a bad package
            raise PackageError(f"{type(exc).__name__}: {exc}"[:500]) from None
        if inspector.model_version != row.version:
            raise PackageError(
                f"the package calls itself {inspector.model_version}, registered as {row.version}"
            )
        return Loaded(row.version, row.sha256, inspector)


class LiveModels:
    """The champion and shadow of this process, kept in step with the registry by `sync`."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        loader: PackageLoader,
        publish: Callable[[InspectorStatus], None],
        bundled: Path | None = None,
    ) -> None:
        self._sessions, self._load, self._publish = sessions, loader, publish
        self._bundled = bundled
        self.champion: Loaded | None = None
        self.shadow: Loaded | None = None
        self.refusals: deque[Refusal] = deque(maxlen=10)
        self._lock = threading.Lock()
        # Loaded by `verify` for a promotion in this process; the next sync swaps it in at once.
        self._prepared: dict[tuple[str, str], Loaded] = {}

    def verify(self, row: RegisteredModel) -> None:
        """For registry.promote / set_shadow: load the package here before it is promoted."""
        try:
            loaded = self._load(row)
        except PackageError as exc:
            self.refusals.appendleft(Refusal(row.version, str(exc)))
            raise
        self._prepared = {(row.version, row.sha256): loaded}

    def sync(self, *, start: bool = False) -> bool:
        """Read the registry and swap what changed; True if something was swapped.

        `start`: the first sync of a process, which registers the bundled package as champion
        when the registry has none, and lets a threshold-override error stop the start.
        """
        with self._lock:
            try:
                with self._sessions() as session:
                    changed = self._sync_champion(session, start)
                    return self._sync_shadow(session) or changed
            except SQLAlchemyError as exc:
                log.warning("model registry unreachable: %s", str(exc).splitlines()[0])
                if start and self.champion is None:
                    self._publish(InspectorStatus(None, "the model registry cannot be read"))
                return False

    def _take(self, row: RegisteredModel) -> Loaded:
        prepared = self._prepared.pop((row.version, row.sha256), None)
        return prepared if prepared is not None else self._load(row)

    def _refuse(self, session: Session, row: RegisteredModel, exc: Exception) -> None:
        reason = str(exc)
        log.error("model %s refused: %s", row.version, reason)
        self.refusals.appendleft(Refusal(row.version, reason))
        registry.mark_refused(session, row.version, reason)

    def _sync_champion(self, session: Session, start: bool) -> bool:
        why = None
        if start and self._bundled is not None:
            why = registry.ensure_champion(session, self._load.store, self._bundled)
        # Each refusal rolls the registry back one champion; a few steps are plenty.
        for _ in range(5):
            row = registry.in_state(session, "champion")
            if row is None:
                if self.champion is None:
                    self._publish(
                        InspectorStatus(None, why or "the model registry has no champion")
                    )
                return False
            if _same(self.champion, row):
                return False
            try:
                loaded = self._take(row)
            except PackageError as exc:
                if start and isinstance(exc, SettingsRefusal):
                    raise DataError(str(exc)) from None
                self._refuse(session, row, exc)
                continue
            self.champion = loaded
            self._publish(InspectorStatus(loaded.inspector, f"model {row.version} loaded"))
            log.info("serving model %s", row.version)
            return True
        return False

    def _sync_shadow(self, session: Session) -> bool:
        row = registry.in_state(session, "shadow")
        if row is None:
            dropped, self.shadow = self.shadow is not None, None
            return dropped
        if _same(self.shadow, row):
            return False
        try:
            self.shadow = self._take(row)
        except PackageError as exc:
            self.shadow = None
            self._refuse(session, row, exc)
        return True


def _same(loaded: Loaded | None, row: RegisteredModel) -> bool:
    return loaded is not None and (loaded.version, loaded.sha256) == (row.version, row.sha256)


class RegistryWatcher:
    """A daemon thread calling `LiveModels.sync` every `poll_s` seconds until closed."""

    def __init__(self, models: LiveModels, poll_s: float) -> None:
        self.models, self.poll_s = models, poll_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kito-registry", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.models.sync()
            except Exception:  # the watcher must outlive any one bad sync
                log.exception("model registry sync failed")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
