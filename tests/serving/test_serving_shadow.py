"""Shadow model: scored beside the champion on live inspections, stored, never in the verdict."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from registry_helpers import A, B, headers_for, register, upload
from typer.testing import CliRunner

from serving.app import create_app
from serving.core.settings import Settings
from serving.db.models import Inspection, ShadowResult, User
from serving.registry.live_models import Loaded
from serving.registry.shadow import shadow_report


@pytest.fixture
def service(settings: Settings, tiny_packages: dict[str, Path]) -> Iterator[TestClient]:
    s = settings.model_copy(update={"model_dir": tiny_packages["A"], "registry_poll_s": 300})
    with TestClient(create_app(s), raise_server_exceptions=False) as c:
        yield c


def _rows(client: TestClient) -> list[ShadowResult]:
    with client.app.state.sessionmaker() as s:  # type: ignore[attr-defined]
        return list(s.query(ShadowResult).order_by(ShadowResult.id).all())


def test_shadow_scores_every_inspection_without_touching_the_verdict(
    service: TestClient, tiny_packages: dict[str, Path], settings: Settings
) -> None:
    artisan, admin = headers_for(service, "artisan"), headers_for(service, "admin")
    before = upload(service, artisan, "p0").json()
    register(service, tiny_packages["B"])
    r = service.post(f"/api/v1/models/{B}/shadow", headers=admin)
    assert r.status_code == 200 and r.json()["state"] == "shadow"
    service.app.state.models.sync()  # type: ignore[attr-defined]
    assert service.get("/readyz").json()["checks"]["model"]["shadow"] == B

    during = [upload(service, artisan, f"p{i}").json() for i in (1, 2)]
    assert service.app.state.shadow_runner.drain()  # type: ignore[attr-defined]
    for body in during:
        # The same photo gets the same verdict and scores as before there was a shadow.
        assert body["model_version"] == A and body["verdict"] == before["verdict"]
        assert body["result"]["scores"] == before["result"]["scores"]
        assert "shadow" not in body["result"]
    rows = _rows(service)
    assert [r.inspection_id for r in rows] == [b["id"] for b in during]
    for row in rows:
        assert (row.model_version, row.champion_version) == (B, A) and row.error is None
        assert row.verdict in {"pass", "fail", "review", "retake"}
        assert row.champion_verdict == before["verdict"] and set(row.scores[0]) == {
            "scratch",
            "tarnish",
            "bent",
        }

    report = service.get("/api/v1/models/shadow-report", headers=admin).json()
    assert report["version"] == B and report["inspections"] == 2 and report["errors"] == 0
    assert sum(v["count"] for v in report["verdicts"]) == 2
    env = {
        "KITO_DATA_DIR": str(settings.data_dir),
        "KITO_DATABASE_URL": settings.db_url,
        "KITO_CATALOG_DIR": str(settings.catalog_dir),
    }
    from kito.cli import app

    out = CliRunner().invoke(app, ["models", "shadow-report"], env=env)
    assert out.exit_code == 0 and f"{B} vs {A}: 2 inspections" in out.output

    # Stopping the shadow: B is a candidate again and new inspections are not shadowed.
    assert service.delete("/api/v1/models/shadow", headers=admin).status_code == 204
    service.app.state.models.sync()  # type: ignore[attr-defined]
    assert service.get(f"/api/v1/models/{B}", headers=admin).json()["state"] == "candidate"
    upload(service, artisan, "p3")
    assert service.app.state.shadow_runner.drain()  # type: ignore[attr-defined]
    assert len(_rows(service)) == 2


class Exploding:
    model_version = "boom@1"

    def inspect(self, photos: Any, design: Any) -> Any:
        raise RuntimeError("shadow blew up")


def test_a_failing_shadow_never_fails_anupload(service: TestClient) -> None:
    artisan = headers_for(service, "artisan")
    service.app.state.models.shadow = Loaded("boom@1", "0" * 64, Exploding())  # type: ignore[attr-defined]
    r = upload(service, artisan, "p0")
    assert r.status_code == 201 and r.json()["model_version"] == A
    assert service.app.state.shadow_runner.drain()  # type: ignore[attr-defined]
    (row,) = _rows(service)
    assert row.verdict is None and row.error == "RuntimeError: shadow blew up"


def test_a_shadow_that_cannot_load_is_refused(
    service: TestClient, tiny_packages: dict[str, Path]
) -> None:
    register(service, tiny_packages["taxonomy"])
    admin = headers_for(service, "admin")
    r = service.post("/api/v1/models/tiny@taxonomy-1/shadow", headers=admin)
    assert r.status_code == 409 and "taxonomy version 2" in r.json()["error"]["message"]
    assert service.get("/readyz").json()["checks"]["model"]["shadow"] is None
    assert service.post(f"/api/v1/models/{A}/shadow", headers=admin).status_code == 409


def test_shadow_report_counts_disagreements(service: TestClient) -> None:
    with service.app.state.sessionmaker() as s:  # type: ignore[attr-defined]
        owner = User(name="a", role="artisan", token_hash="f" * 64)
        s.add(owner)
        s.flush()
        cases = [
            ("pass", "pass", [], []),
            ("review", "fail", ["scratch"], ["scratch", "bent"]),
            ("fail", "pass", ["tarnish"], []),
        ]
        for i, (mine, theirs, d_mine, d_theirs) in enumerate(cases):
            insp = Inspection(
                owner_id=owner.id,
                design_id="KQ-HOOP-BR-30",
                piece_id=f"p{i}",
                status="inspected",
                verdict=mine,
                model_version=A,
                request_hash="0" * 64,
            )
            s.add(insp)
            s.flush()
            s.add(
                ShadowResult(
                    inspection_id=insp.id,
                    model_version=B,
                    champion_version=A,
                    champion_verdict=mine,
                    verdict=theirs,
                    champion_defects=d_mine,
                    defects=d_theirs,
                    scores=[],
                )
            )
        s.commit()
        report = shadow_report(s, B)
    assert report["inspections"] == 3 and report["agreed"] == 1
    assert report["agreement_rate"] == pytest.approx(1 / 3)
    assert report["per_class"] == {
        "bent": {"both": 0, "champion_only": 0, "shadow_only": 1},
        "scratch": {"both": 1, "champion_only": 0, "shadow_only": 0},
        "tarnish": {"both": 0, "champion_only": 1, "shadow_only": 0},
    }
    assert {(d["champion"], d["shadow"]) for d in report["disagreements"]} == {
        ("review", "fail"),
        ("fail", "pass"),
    }
    assert all(d["design_id"] == "KQ-HOOP-BR-30" for d in report["disagreements"])
