"""`kito serve`, `kito db upgrade`, `kito users create`: settings errors exit 2 with one line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from kito.cli import app
from serving.db.migrate import current_revision


@pytest.fixture
def env(tmp_path: Path, db_url: str, catalog_dir: Path) -> dict[str, str]:
    return {
        "KITO_DATA_DIR": str(tmp_path / "data"),
        "KITO_DATABASE_URL": db_url,
        "KITO_CATALOG_DIR": str(catalog_dir),
        "KITO_MODEL_DIR": str(tmp_path / "no-model"),
    }


def run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(app, list(args), env=env)
    return r.exit_code, r.stdout, r.stderr


def test_db_upgrade_and_users_create(env: dict[str, str], db_url: str) -> None:
    code, out, _ = run(env, "db", "upgrade")
    assert code == 0 and "at revision 0005" in out
    assert current_revision(db_url) == "0005"
    code, out, _ = run(env, "users", "create", "--name", "Wanjiru", "--role", "qc")
    assert code == 0, out
    token = out.strip().splitlines()[-1]
    assert token.startswith("kito_") and "(qc) created" in out
    from serving.core.auth import hash_token

    assert hash_token(token) not in out  # the hash is never shown; the token only here


def test_users_create_bad_role_is_exit_2(env: dict[str, str]) -> None:
    code, _, err = run(env, "users", "create", "--name", "X", "--role", "boss")
    assert code == 2 and err.startswith("error: role must be one of") and err.count("\n") == 1


@pytest.mark.parametrize(
    ("var", "value", "needle"),
    [
        ("KITO_PORT", "99999", "KITO_PORT"),
        ("KITO_HOST", "0.0.0.0", "KITO_ALLOW_PUBLIC_BIND"),
        ("KITO_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/x", "127.0.0.1:1"),
        ("KITO_CATALOG_DIR", "/nonexistent/catalog", "catalog folder not found"),
    ],
)
def test_serve_refuses_bad_settings(env: dict[str, str], var: str, value: str, needle: str) -> None:
    code, out, err = run({**env, var: value}, "serve")
    assert code == 2, out + err
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err


def test_serve_builds_the_app_and_runs_uvicorn(env: dict[str, str], monkeypatch) -> None:
    import uvicorn

    seen: dict[str, object] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(app=app, **kw))
    code, out, _ = run(env, "serve", "--port", "8123")
    assert code == 0, out
    assert seen["host"] == "127.0.0.1" and seen["port"] == 8123
    assert "/api/v1/inspections" in seen["app"].openapi()["paths"]  # type: ignore[attr-defined]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_kito_serve_answers_over_http(env: dict[str, str]) -> None:
    """The real thing: `kito serve` in its own process, asked over TCP."""
    port = _free_port()
    kito = Path(sys.executable).with_name("kito")
    proc = subprocess.Popen(
        [str(kito), "serve", "--port", str(port)],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
                assert time.monotonic() < deadline, "kito serve did not answer within 60 s"
                time.sleep(0.2)
        assert r.status_code == 503  # no model package in this test
        assert r.json()["checks"]["model"]["ok"] is False
        assert r.json()["checks"]["database"]["ok"] is True
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").json() == {"status": "ok"}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
