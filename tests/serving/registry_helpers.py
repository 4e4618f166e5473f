"""Helpers for the registry, hot-swap and shadow tests: a process's settings, uploads of a
photo the real inspector accepts, registering a package, waiting for a swap."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
from fastapi.testclient import TestClient
from model_package import mat_photo

from serving.core.auth import create_user
from serving.core.settings import Settings
from serving.registry import registry

A, B = "tiny@tiny-1", "tiny@tiny-2"  # model_package.build_tiny_package's two versions
DESIGN = "KQ-HOOP-BR-30"
PHOTO = cv2.imencode(".jpg", mat_photo(4.0, 30.0), [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def process_settings(base: Settings, bundled: Path, name: str, poll: float) -> Settings:
    """A service process of its own (own model cache) on the shared database and stores."""
    return base.model_copy(
        update={
            "model_dir": bundled,
            "registry_poll_s": poll,
            "model_cache_dir": base.data_dir / f"cache-{name}",
            "photo_dir": base.data_dir / "photos",
            "package_dir": base.data_dir / "packages",
        }
    )


def headers_for(client: TestClient, role: str) -> dict[str, str]:
    with client.app.state.sessionmaker() as s:  # type: ignore[attr-defined]
        _, token = create_user(s, name=f"{role}-user", role=role)
    return {"Authorization": f"Bearer {token}"}


def upload(client: TestClient, headers: dict[str, str], piece: str) -> Any:
    return client.post(
        "/api/v1/inspections",
        headers=headers,
        data={"design_id": DESIGN, "piece_id": piece},
        files=[("photos", ("a.jpg", PHOTO, "image/jpeg"))],
    )


def register(client: TestClient, folder: Path, **kw: Any) -> Any:
    """Register a package in the registry of the client's app (as a candidate); the row."""
    app = client.app
    with app.state.sessionmaker() as s:  # type: ignore[attr-defined]
        store = app.state.package_loader.store  # type: ignore[attr-defined]
        return registry.register(s, store, folder, **kw)[0]


def wait_for(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)
