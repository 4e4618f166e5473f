"""Orphan photo files: stored objects that no photo row names, and how they are removed safely.

An upload stores its photos before the transaction that records them
(serving.inspection.intake), so a request that loses (to a payout, to another request with its
Idempotency-Key, to a database failure) can leave files behind. A file is deleted only when
all three hold:
- no photo row names its key (checked in the database just before the delete);
- it is not in flight: no upload in this process holds its key (`IN_FLIGHT`) between storing
  it and committing or rolling back;
- it is older than a minimum age (for uploads in other processes or replicas, which this
  process cannot see; `ObjectStore.put` renews an existing key's age).

Written against the `ObjectStore` protocol only (`list_keys`, `delete`), for every store.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from sqlalchemy import select
from sqlalchemy.orm import Session

from serving.db.models import Photo
from serving.store.storage import ObjectStore

log = logging.getLogger("kito.serving")
_BATCH = 500


class InFlight:
    """Keys held by uploads between storing their photos and ending their transaction."""

    def __init__(self) -> None:
        self._held: Counter[str] = Counter()
        self._lock = threading.Lock()

    @contextmanager
    def hold(self, keys: Iterable[str]) -> Iterator[None]:
        keys = list(keys)
        with self._lock:
            self._held.update(keys)
        try:
            yield
        finally:
            with self._lock:
                self._held.subtract(keys)
                for k in keys:
                    if self._held[k] <= 0:
                        del self._held[k]

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return self._held.get(key, 0) > 0  # type: ignore[call-overload]


IN_FLIGHT = InFlight()


def unreferenced(session: Session, keys: Iterable[str]) -> set[str]:
    """Those of `keys` that no photo row names."""
    keys = list(dict.fromkeys(keys))
    named: set[str] = set()
    for i in range(0, len(keys), _BATCH):
        batch = keys[i : i + _BATCH]
        named.update(session.scalars(select(Photo.sha256).where(Photo.sha256.in_(batch))).all())
    return set(keys) - named


def discard_unclaimed(
    session: Session,
    store: ObjectStore,
    keys: Iterable[str],
    *,
    existed_before: set[str],
    in_flight: InFlight = IN_FLIGHT,
) -> list[str]:
    """After an upload lost (its transaction rolled back): delete the files it created that no
    row names and no other upload in this process holds. Keys that were in the store before
    the upload are never touched (another upload or row may own them)."""
    mine = [k for k in dict.fromkeys(keys) if k not in existed_before and k not in in_flight]
    gone = []
    for key in sorted(unreferenced(session, mine)):
        if key in in_flight:  # taken by another upload since the check above
            continue
        store.delete(key)
        gone.append(key)
    session.rollback()  # end the read transaction
    return gone


def sweep_orphans(
    session: Session,
    store: ObjectStore,
    *,
    min_age_s: float,
    now: float | None = None,
    in_flight: InFlight = IN_FLIGHT,
    dry_run: bool = False,
) -> list[str]:
    """Delete (or with `dry_run` only list) every stored object older than `min_age_s` that no
    row names and no upload in this process holds. Returns the keys."""
    now = time.time() if now is None else now
    old = [k for k, mtime in store.list_keys() if now - mtime >= min_age_s and k not in in_flight]
    orphans = sorted(unreferenced(session, old))
    session.rollback()
    if dry_run:
        return orphans
    gone = []
    for key in orphans:
        if key in in_flight:
            continue
        store.delete(key)
        gone.append(key)
    return gone


class OrphanSweeper(threading.Thread):
    """The service's periodic sweep: every `every_s`, files older than `min_age_s`."""

    def __init__(
        self,
        sessions: Callable[[], Session],
        store: ObjectStore,
        *,
        every_s: float,
        min_age_s: float,
    ) -> None:
        super().__init__(name="orphan-sweeper", daemon=True)
        self.sessions, self.store = sessions, store
        self.every_s, self.min_age_s = every_s, min_age_s
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.every_s):
            self.sweep_once()

    def sweep_once(self) -> list[str]:
        try:
            with self.sessions() as session:
                gone = sweep_orphans(session, self.store, min_age_s=self.min_age_s)
        except Exception:  # a database or store outage: try again next round
            log.exception("orphan sweep failed")
            return []
        if gone:
            log.warning("deleted %d orphan photo files (no row names them)", len(gone))
        return gone

    def close(self) -> None:
        self._halt.set()
        self.join(timeout=10)
