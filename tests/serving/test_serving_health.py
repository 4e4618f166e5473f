"""Health, readiness and metrics endpoints."""

from __future__ import annotations

from fastapi.testclient import TestClient

from serving.app import create_app
from serving.core.settings import Settings
from serving.inspection.model_inspector import load_inspector
from serving.inspection.pipeline import InspectorStatus


def test_healthz(client: TestClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_readyz_ready_with_inspector(client: TestClient) -> None:
    r = client.get("/readyz")
    assert r.status_code == 200, r.json()
    body = r.json()
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"model", "database", "catalog", "photo_store"}
    assert body["checks"]["catalog"]["detail"] == "16 designs"


def test_readyz_not_ready_without_model(settings: Settings) -> None:
    status = load_inspector(settings.model_dir)
    assert status.inspector is None and "not found" in status.reason
    with TestClient(create_app(settings)) as c:
        r = c.get("/readyz")
    assert r.status_code == 503
    model = r.json()["checks"]["model"]
    assert model["ok"] is False and str(settings.model_dir) in model["detail"]
    assert r.json()["checks"]["database"]["ok"] is True


def test_readyz_not_ready_when_database_is_gone(settings: Settings) -> None:
    app = create_app(settings, inspector_status=InspectorStatus(None, "none"))
    with TestClient(app) as c:
        app.state.engine.dispose()
        from serving.db.session import make_engine

        app.state.engine = make_engine("sqlite:////nonexistent-dir/x.db")
        r = c.get("/readyz")
    assert r.status_code == 503
    assert r.json()["checks"]["database"]["ok"] is False


def test_metrics_count_requests_by_route_template(client: TestClient, make_user) -> None:
    _, headers = make_user("qc")
    client.get("/api/v1/inspections/abc", headers=headers)
    client.get("/api/v1/inspections/def", headers=headers)
    text = client.get("/metrics").text
    route = "/api/v1/inspections/{inspection_id}"
    line = f'kito_http_requests_total{{method="GET",route="{route}",status="404"}} 2.0'
    assert line in text
    assert "kito_http_request_duration_seconds_bucket" in text


def test_app_start_migrates_a_fresh_database(tmp_path, catalog_dir) -> None:  # type: ignore[no-untyped-def]
    from serving.db.migrate import current_revision

    s = Settings(data_dir=tmp_path / "fresh", catalog_dir=catalog_dir)
    assert s.migrate_on_start
    with TestClient(create_app(s)) as c:
        assert c.get("/readyz").json()["checks"]["database"]["ok"] is True
    assert current_revision(s.db_url) == "0005"
