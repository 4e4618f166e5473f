"""Reliability tests drive the real service: `kito serve` in its own process on a free port.

The stand-in catalog and the PostgreSQL server come from the service tests' fixtures
(tests/serving/conftest.py), loaded here under another name so both folders share them; the
service tests' helpers (photo_samples, upload_helpers) are importable too.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_SERVING_TESTS = Path(__file__).resolve().parent.parent / "serving"
sys.path.insert(0, str(_SERVING_TESTS))
_spec = importlib.util.spec_from_file_location(
    "serving_test_fixtures", _SERVING_TESTS / "conftest.py"
)
assert _spec is not None and _spec.loader is not None
_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fixtures)
catalog_dir = _fixtures.catalog_dir

from live_service import Service, fresh_postgres  # noqa: E402


@pytest.fixture(scope="session")
def postgres_admin() -> str:
    """libpq conninfo of the test server's maintenance database (KITO_TEST_POSTGRES)."""
    return str(_fixtures.PG_ADMIN)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL of its own for one test: a new SQLite file, or a new PostgreSQL database
    (created here, dropped after)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'kito.db'}"
        return
    with fresh_postgres(request.getfixturevalue("postgres_admin")) as url:
        yield url


@pytest.fixture
def service(tmp_path: Path, database: str, catalog_dir: Path) -> Iterator[Service]:
    """`kito serve` on its own port, database and photo folder; stopped after the test."""
    svc = Service(tmp_path / "data", database, catalog_dir)
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()
