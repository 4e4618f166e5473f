"""The model registry: bootstrap, register, promote (gate, force), rollback, API and CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from registry_helpers import A, B, headers_for, register
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from serving.app import create_app
from serving.core.settings import Settings
from serving.db.models import AuditEntry
from serving.registry import registry


@pytest.fixture
def reg_settings(settings: Settings, tiny_packages: dict[str, Path]) -> Settings:
    # A long poll: these tests sync by hand, so nothing changes behind their back.
    return settings.model_copy(update={"model_dir": tiny_packages["A"], "registry_poll_s": 300})


@pytest.fixture
def app_client(reg_settings: Settings) -> Any:
    app = create_app(reg_settings)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _actions(client: TestClient) -> list[tuple[str, str]]:
    with client.app.state.sessionmaker() as s:  # type: ignore[attr-defined]
        rows = s.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        return [(r.action, r.entity_id) for r in rows if r.action.startswith("model.")]


def test_bundled_package_becomes_champion_once(
    app_client: TestClient, reg_settings: Settings
) -> None:
    ready = app_client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["checks"]["model"]["version"] == A
    admin = headers_for(app_client, "admin")
    (row,) = app_client.get("/api/v1/models", headers=admin).json()["data"]
    assert row["version"] == A and row["state"] == "champion"
    assert row["promoted_by"].startswith("bootstrap") and row["taxonomy_version"] == "1"
    # A second process on the same registry finds the champion and registers nothing.
    with TestClient(create_app(reg_settings)) as second:
        assert second.get("/readyz").json()["checks"]["model"]["version"] == A
    assert app_client.get("/api/v1/models", headers=admin).json()["count"] == 1
    assert _actions(app_client) == [("model.register", A), ("model.promote", A)]


def test_register_is_idempotent_and_refuses_a_clashing_version(
    app_client: TestClient, tiny_packages: dict[str, Path], tmp_path: Path
) -> None:
    first = register(app_client, tiny_packages["B"])
    again = register(app_client, tiny_packages["B"])
    assert first.id == again.id and first.state == "candidate"
    assert first.sha256 == again.sha256 and len(first.sha256) == 64
    # Another package under the same version (here: B's package.json with A's model).
    import shutil

    clash = tmp_path / "clash"
    shutil.copytree(tiny_packages["B"], clash)
    shutil.copy(tiny_packages["A"] / "model.onnx", clash / "model.onnx")
    with pytest.raises(registry.RegistryError, match="registered already with other files"):
        register(app_client, clash)


def test_promote_and_rollback_over_the_api(
    app_client: TestClient, tiny_packages: dict[str, Path]
) -> None:
    register(app_client, tiny_packages["B"], parent_version=A)
    admin, qc = headers_for(app_client, "admin"), headers_for(app_client, "qc")
    assert app_client.post(f"/api/v1/models/{B}/promote", headers=qc).status_code == 403
    missing = app_client.post("/api/v1/models/nope@1/promote", headers=admin)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"

    r = app_client.post(f"/api/v1/models/{B}/promote", headers=admin)
    assert r.status_code == 200, r.json()
    body = r.json()
    assert body["state"] == "champion" and body["parent_version"] == A
    assert "admin-user" in body["promoted_by"] and body["promoted_at"]
    states = {
        m["version"]: m["state"]
        for m in app_client.get("/api/v1/models", headers=admin).json()["data"]
    }
    assert states == {A: "retired", B: "champion"}
    app_client.app.state.models.sync()  # type: ignore[attr-defined]
    assert app_client.get("/readyz").json()["checks"]["model"]["version"] == B

    r = app_client.post("/api/v1/models/rollback", headers=admin, json={"reason": "test"})
    assert r.status_code == 200 and r.json()["version"] == A and r.json()["state"] == "champion"
    again = app_client.post("/api/v1/models/rollback", headers=admin)
    assert again.status_code == 409 and "no earlier champion" in again.json()["error"]["message"]
    show = app_client.get(f"/api/v1/models/{B}", headers=admin).json()
    assert show["state"] == "retired"
    assert _actions(app_client)[-3:] == [
        ("model.register", B),
        ("model.promote", B),
        ("model.rollback", A),
    ]


def test_a_candidate_that_failed_the_gate_needs_force_and_a_note(
    app_client: TestClient, tiny_packages: dict[str, Path]
) -> None:
    gate = {"passed": False, "reasons": ["macro-F1 on the holdout fell 3.1 points"]}
    register(app_client, tiny_packages["B"], metrics={"gate": gate})
    admin = headers_for(app_client, "admin")
    r = app_client.post(f"/api/v1/models/{B}/promote", headers=admin)
    assert r.status_code == 409 and r.json()["error"]["code"] == "gate"
    assert "3.1 points" in r.json()["error"]["message"]
    r = app_client.post(f"/api/v1/models/{B}/promote", headers=admin, json={"force": True})
    assert r.status_code == 422 and r.json()["error"]["code"] == "note"
    r = app_client.post(
        f"/api/v1/models/{B}/promote", headers=admin, json={"force": True, "note": "hotfix"}
    )
    assert r.status_code == 200 and r.json()["state"] == "champion"
    with app_client.app.state.sessionmaker() as s:  # type: ignore[attr-defined]
        entry = s.scalars(
            select(AuditEntry)
            .where(AuditEntry.action == "model.promote")
            .order_by(AuditEntry.id.desc())
        ).first()
        assert (
            entry is not None
            and entry.detail["forced"] is True
            and entry.detail["note"] == "hotfix"
        )


def test_at_most_one_champion_in_the_database(
    db_url: str, app_client: TestClient, tiny_packages
) -> None:
    register(app_client, tiny_packages["B"])
    engine = create_engine(db_url)
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text("UPDATE models SET state = 'champion' WHERE state = 'candidate'"))
    with Session(engine) as s:
        assert [m.version for m in registry.listing(s, "champion")] == [A]
    engine.dispose()


def test_cli_register_list_promote_show_rollback(
    app_client: TestClient, reg_settings: Settings, tiny_packages: dict[str, Path]
) -> None:
    from kito.cli import app

    env = {
        "KITO_DATA_DIR": str(reg_settings.data_dir),
        "KITO_DATABASE_URL": reg_settings.db_url,
        "KITO_CATALOG_DIR": str(reg_settings.catalog_dir),
    }
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(app, list(args), env=env)
        assert result.exit_code == 0, result.output
        return result.output

    assert f"registered {B} (candidate)" in run("models", "register", str(tiny_packages["B"]))
    listing = run("models", "list")
    assert A in listing and B in listing and "champion" in listing
    assert f"{B} is the champion (was {A})" in run("models", "promote", B)
    assert '"state": "champion"' in run("models", "show", B)
    assert f"rolled back {B} -> {A}" in run("models", "rollback")
    bad = runner.invoke(app, ["models", "show", "nope@1"], env=env)
    assert bad.exit_code == 2 and "no model 'nope@1'" in bad.output
    # The running service follows the registry the CLI changed.
    app_client.app.state.models.sync()  # type: ignore[attr-defined]
    assert app_client.get("/readyz").json()["checks"]["model"]["version"] == A
