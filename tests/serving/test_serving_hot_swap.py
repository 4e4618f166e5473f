"""Hot swap: promotion and rollback reach running service processes between requests, without a
failed request; packages that cannot be loaded are refused and the champion keeps serving."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from model_package import BROKEN
from registry_helpers import A, B, headers_for, process_settings, register, upload, wait_for
from sqlalchemy import select

from serving.app import create_app
from serving.core.settings import Settings
from serving.db.models import AuditEntry, Inspection
from serving.registry import registry


@pytest.fixture
def service(settings: Settings, tiny_packages: dict[str, Path]) -> Iterator[TestClient]:
    app = create_app(process_settings(settings, tiny_packages["A"], "one", poll=0.05))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


class Uploader(threading.Thread):
    """Uploads one piece after another until stopped; keeps every status and version."""

    def __init__(self, client: TestClient, headers: dict[str, str], name: str) -> None:
        super().__init__(daemon=True)
        self.client, self.headers, self.tag = client, headers, name
        self.results: list[tuple[int, str | None, str | None]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            r = upload(self.client, self.headers, f"{self.tag}-{n}")
            body = r.json()
            self.results.append((r.status_code, body.get("model_version"), body.get("id")))
            n += 1

    def versions(self) -> list[str | None]:
        return [v for _, v, _ in self.results]


def test_uploads_during_promotion_and_rollback_never_fail(
    service: TestClient, tiny_packages: dict[str, Path]
) -> None:
    register(service, tiny_packages["B"])
    artisan, admin = headers_for(service, "artisan"), headers_for(service, "admin")
    uploaders = [Uploader(service, artisan, f"u{i}") for i in range(2)]
    for u in uploaders:
        u.start()

    def seen(version: str, after: int) -> bool:
        return any(v == version for u in uploaders for v in u.versions()[after:])

    wait_for(lambda: all(len(u.results) >= 2 for u in uploaders))
    marks = [len(u.results) for u in uploaders]
    assert service.post(f"/api/v1/models/{B}/promote", headers=admin).status_code == 200
    wait_for(lambda: all(B in u.versions()[m:] for u, m in zip(uploaders, marks, strict=True)))
    marks = [len(u.results) for u in uploaders]
    assert service.post("/api/v1/models/rollback", headers=admin).status_code == 200
    wait_for(lambda: all(A in u.versions()[m:] for u, m in zip(uploaders, marks, strict=True)))
    for u in uploaders:
        u.stop.set()
    for u in uploaders:
        u.join(timeout=60)

    for u in uploaders:
        statuses = {s for s, _, _ in u.results}
        assert statuses == {201}, u.results
        # Each thread saw A, then B, then A again: one model per request, swapped between them.
        runs = [v for i, v in enumerate(u.versions()) if i == 0 or u.versions()[i - 1] != v]
        assert runs == [A, B, A], runs
    # Each stored verdict names the model that made it.
    answered = {i: v for u in uploaders for _, v, i in u.results}
    with service.app.state.sessionmaker() as s:  # type: ignore[attr-defined]
        stored = {i: v for i, v in s.execute(select(Inspection.id, Inspection.model_version))}
    assert stored == answered and seen(B, 0)


def test_a_second_process_follows_the_registry(
    service: TestClient, settings: Settings, tiny_packages: dict[str, Path]
) -> None:
    other = create_app(process_settings(settings, tiny_packages["A"], "two", poll=0.05))
    with TestClient(other, raise_server_exceptions=False) as second:
        register(service, tiny_packages["B"])
        admin, artisan = headers_for(service, "admin"), headers_for(second, "artisan")
        assert upload(second, artisan, "p0").json()["model_version"] == A
        # Promoted through the first process; the second swaps at its next registry poll.
        assert service.post(f"/api/v1/models/{B}/promote", headers=admin).status_code == 200
        wait_for(lambda: second.get("/readyz").json()["checks"]["model"]["version"] == B)
        assert upload(second, artisan, "p1").json()["model_version"] == B


@pytest.mark.parametrize("kind", BROKEN)
def test_a_package_that_cannot_load_is_refused_at_promotion(
    service: TestClient, tiny_packages: dict[str, Path], kind: str
) -> None:
    version = f"tiny@{kind}-1"
    register(service, tiny_packages[kind])
    admin, artisan = headers_for(service, "admin"), headers_for(service, "artisan")
    r = service.post(f"/api/v1/models/{version}/promote", headers=admin)
    assert r.status_code == 409 and r.json()["error"]["code"] == "refused"
    expected = {
        "checksum": "does not match package.json",
        "corrupt": "onnxruntime cannot load it",
        "taxonomy": "taxonomy version 2",
        "input_shape": "does not match preprocess.input_size 48",
    }[kind]
    assert expected in r.json()["error"]["message"]
    row = service.get(f"/api/v1/models/{version}", headers=admin).json()
    assert row["state"] == "candidate" and expected in row["refusal_reason"]
    model = service.get("/readyz").json()["checks"]["model"]
    assert model["ok"] and model["version"] == A
    assert model["refused"][0]["version"] == version
    assert upload(service, artisan, "p").json()["model_version"] == A


def test_a_process_that_cannot_load_the_new_champion_keeps_serving_and_rolls_it_back(
    service: TestClient, settings: Settings, tiny_packages: dict[str, Path]
) -> None:
    # The second process syncs only when told, so the store can be damaged before it loads B.
    other = create_app(process_settings(settings, tiny_packages["A"], "two", poll=300))
    with TestClient(other, raise_server_exceptions=False) as second:
        register(service, tiny_packages["B"])
        admin, artisan = headers_for(service, "admin"), headers_for(second, "artisan")
        assert service.post(f"/api/v1/models/{B}/promote", headers=admin).status_code == 200
        wait_for(lambda: service.get("/readyz").json()["checks"]["model"]["version"] == B)
        with service.app.state.sessionmaker() as s:  # type: ignore[attr-defined]
            key = registry.get(s, B).sha256
        store = service.app.state.package_loader.store  # type: ignore[attr-defined]
        store.path(key).write_bytes(b"not an onnx model")  # bit rot in the shared store

        second.app.state.models.sync()  # type: ignore[attr-defined]
        ready = second.get("/readyz")
        assert ready.status_code == 200
        model = ready.json()["checks"]["model"]
        assert model["version"] == A and model["refused"][0]["version"] == B
        assert "corrupt" in model["refused"][0]["reason"]
        assert upload(second, artisan, "p0").json()["model_version"] == A
        # The registry marks the refusal and rolls the champion back for every process.
        row = service.get(f"/api/v1/models/{B}", headers=admin).json()
        assert row["state"] == "retired" and "corrupt" in row["refusal_reason"]
        wait_for(lambda: service.get("/readyz").json()["checks"]["model"]["version"] == A)
        with service.app.state.sessionmaker() as s:  # type: ignore[attr-defined]
            actions = [
                (e.action, e.entity_id, e.actor_id)
                for e in s.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
                if e.action in ("model.refuse", "model.rollback")
            ]
        assert actions == [("model.refuse", B, None), ("model.rollback", A, None)]


def test_a_fresh_process_skips_a_champion_it_cannot_load(
    settings: Settings, tiny_packages: dict[str, Path]
) -> None:
    first = create_app(process_settings(settings, tiny_packages["A"], "one", poll=300))
    with first.state.sessionmaker() as s:
        store = first.state.package_loader.store
        registry.register(s, store, tiny_packages["B"])
        registry.promote(s, B, by="test")  # as a CLI on another host might, unverified
        store.path(registry.get(s, B).sha256).write_bytes(b"garbage")
    fresh = create_app(process_settings(settings, tiny_packages["A"], "fresh", poll=300))
    with TestClient(fresh) as c:
        model = c.get("/readyz").json()["checks"]["model"]
    assert model["ok"] and model["version"] == A and model["refused"][0]["version"] == B
