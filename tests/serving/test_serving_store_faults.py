"""Photo store write failures (injected): 503 with Retry-After, no record without its photos,
and a retry with the same Idempotency-Key after the store recovers leaves everything clean."""

from __future__ import annotations

from fastapi.testclient import TestClient
from photo_samples import jpeg
from sqlalchemy import func, select
from upload_helpers import counts, post

from serving.core.deps import get_store
from serving.db.models import Inspection
from serving.store.fsck import fsck
from serving.store.storage import LocalObjectStore, StorageError


class FailingStore:
    """The real store, except that the puts numbered in `fail` (1-based) raise as a full disk
    would make LocalObjectStore raise."""

    def __init__(self, inner: LocalObjectStore, fail: set[int]) -> None:
        self.inner = inner
        self.fail = fail
        self.puts = 0

    def put(self, data: bytes, key: str | None = None) -> str:
        self.puts += 1
        if self.puts in self.fail:
            raise StorageError(f"cannot write photo under {self.inner.root}: No space left")
        return self.inner.put(data, key)

    def get(self, key: str) -> bytes:
        return self.inner.get(key)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def check(self) -> None:
        self.inner.check()


def _inject(client: TestClient, fail: set[int]) -> FailingStore:
    store = FailingStore(client.app.state.store, fail)  # type: ignore[attr-defined]
    client.app.dependency_overrides[get_store] = lambda: store  # type: ignore[attr-defined]
    return store


def _fsck(client: TestClient) -> list[str]:
    with client.app.state.sessionmaker() as session:  # type: ignore[attr-defined]
        report = fsck(session, client.app.state.store)  # type: ignore[attr-defined]
    return [f.kind for f in report.findings]


def test_first_write_fails_503_nothing_stored(client: TestClient, make_user) -> None:
    _, headers = make_user()
    _inject(client, {1})
    r = post(client, headers, key="k-1")
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "storage_unavailable"
    assert r.headers["retry-after"] == "5" and "Traceback" not in r.text
    assert counts(client) == (0, 0, 0) and _fsck(client) == []


def test_second_photo_fails_no_row_and_retry_is_clean(client: TestClient, make_user) -> None:
    _, headers = make_user()
    photos = [("a.jpg", jpeg(300, 240), "image/jpeg"), ("b.jpg", jpeg(301, 240), "image/jpeg")]
    store = _inject(client, {2})
    r = post(client, headers, photos, key="k-2")
    assert r.status_code == 503 and r.headers["retry-after"] == "5"
    # The first photo reached the store; no row names it: an orphan, found by fsck.
    assert counts(client) == (0, 0, 1) and _fsck(client) == ["orphan_object"]
    # The client retries with the same key once the store works again.
    r = post(client, headers, photos, key="k-2")
    assert r.status_code == 201, r.text
    assert store.puts == 4 and counts(client) == (1, 2, 2) and _fsck(client) == []
    assert post(client, headers, photos, key="k-2").status_code == 200  # a replay
    with client.app.state.sessionmaker() as s:  # type: ignore[attr-defined]
        n = s.scalar(select(func.count()).where(Inspection.idempotency_key == "k-2"))
    assert n == 1
    client.app.dependency_overrides.clear()  # type: ignore[attr-defined]


def test_upload_is_hashed_once_and_stored_under_that_hash(
    client: TestClient, make_user, monkeypatch
) -> None:
    """The upload's sha256 is computed once and handed to the store as the key (2 ms of CPU
    for a 3 MB photo each time it is hashed again); the object is stored under the true hash."""
    import hashlib

    import serving.inspection.submission as submission
    import serving.store.storage as storage

    _, headers = make_user()
    data = jpeg(320, 240)
    hashed: list[int] = []

    def counting(b: bytes) -> str:
        hashed.append(len(b))
        return hashlib.sha256(b).hexdigest()

    monkeypatch.setattr(submission, "content_key", counting)
    monkeypatch.setattr(storage, "content_key", counting)
    store = _inject(client, set())
    r = post(client, headers, [("a.jpg", data, "image/jpeg")], key="k-3")
    assert r.status_code == 201, r.text
    assert hashed.count(len(data)) == 1 and store.puts == 1
    assert store.inner.get(hashlib.sha256(data).hexdigest()) == data
    client.app.dependency_overrides.clear()  # type: ignore[attr-defined]
