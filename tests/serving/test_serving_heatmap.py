"""Stored scores, thresholds and heatmaps; the heatmap overlay download; threshold overrides."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from model_package import CLASSES, build_tiny_package, mat_photo

from qc_model.errors import DataError
from serving.app import create_app
from serving.core.auth import create_user
from serving.core.settings import Settings, SettingsError, load_settings
from serving.inspection.model_inspector import ModelInspector, ThresholdOverrideError

DESIGN = "KQ-HOOP-BR-30"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_package(tmp_path_factory.mktemp("model") / "tiny")


def _jpeg(img: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_heatmap_download_and_stored_results(settings: Settings, model_dir: Path) -> None:
    overrides = {"scratch": (0.05, 0.06)}
    app = create_app(
        settings.model_copy(update={"model_dir": model_dir, "threshold_overrides": overrides})
    )
    with TestClient(app) as c:
        with app.state.sessionmaker() as session:
            _, owner = create_user(session, name="A", role="artisan")
            _, other = create_user(session, name="B", role="artisan")
            _, qc = create_user(session, name="Q", role="qc")
        r = c.post(
            "/api/v1/inspections",
            headers={"Authorization": f"Bearer {owner}"},
            data={"design_id": DESIGN, "piece_id": "P-1"},
            files=[("photos", ("a.jpg", _jpeg(mat_photo(4.0, 30.0)), "image/jpeg"))],
        )
        assert r.status_code == 201, r.json()
        body = r.json()
        result = body["result"]
        # Scores, the thresholds actually used (with the override) and the version are stored.
        assert set(result["scores"][0]) == set(CLASSES)
        assert result["thresholds"]["bands"]["scratch"] == [0.05, 0.06]
        assert result["thresholds"]["overridden"] == ["scratch"]
        assert body["model_version"] == "tiny@tiny-1"
        heat = result["heatmaps"][0]
        assert heat["class"] in CLASSES and len(heat["grid"]) > 1
        url = f"/api/v1/inspections/{body['id']}/photos/0/heatmap"
        for token in (owner, qc):
            got = c.get(url, headers={"Authorization": f"Bearer {token}"})
            assert got.status_code == 200 and got.headers["content-type"] == "image/png"
            png = cv2.imdecode(np.frombuffer(got.content, np.uint8), cv2.IMREAD_COLOR)
            box = heat["crop_box"]
            assert png.shape[0] == png.shape[1] == min(512, box[2] - box[0])
            assert got.headers["X-Heatmap-Class"] == heat["class"]
        hidden = c.get(url, headers={"Authorization": f"Bearer {other}"})
        assert hidden.status_code == 404
        missing = c.get(url.replace("/0/", "/3/"), headers={"Authorization": f"Bearer {owner}"})
        assert missing.status_code == 404
        assert c.get(url).status_code == 401


def test_heatmap_overlay_follows_the_grid(model_dir: Path) -> None:
    from qc_model.decode import DecodeLimits
    from serving.inspection.heatmap import render_heatmap

    photo = cv2.imencode(".png", np.full((400, 400, 3), 128, np.uint8))[1].tobytes()
    grid = np.zeros((8, 8))
    grid[:, 4:] = 1.0  # hot on the right half only
    entry = {"class": "scratch", "crop_box": [0, 0, 400, 400], "image_size": [400, 400]}
    png = render_heatmap(photo, {**entry, "grid": grid.tolist()}, DecodeLimits())
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR).astype(int)
    # JET: cold is blue, hot is red.
    assert img[200, 20, 0] > img[200, 20, 2] and img[200, 380, 2] > img[200, 380, 0]
    with pytest.raises(ValueError, match="2-D"):
        render_heatmap(photo, {**entry, "grid": [1.0, 2.0]}, DecodeLimits())


def test_threshold_override_for_unknown_class_stops_the_start(
    settings: Settings, model_dir: Path
) -> None:
    with pytest.raises(ThresholdOverrideError, match=r"'sratch'.*scores bent, scratch, tarnish"):
        ModelInspector(model_dir, threshold_overrides={"sratch": (0.2, 0.8)})
    bad = settings.model_copy(
        update={"model_dir": model_dir, "threshold_overrides": {"sratch": (0.2, 0.8)}}
    )
    with pytest.raises(DataError, match="KITO_THRESHOLD_OVERRIDES"):
        create_app(bad)


def test_threshold_overrides_setting_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KITO_THRESHOLD_OVERRIDES", '{"scratch": [0.3, 0.9]}')
    assert load_settings().threshold_overrides == {"scratch": (0.3, 0.9)}
    monkeypatch.setenv("KITO_THRESHOLD_OVERRIDES", '{"scratch": [0.9, 0.3]}')
    with pytest.raises(SettingsError, match="KITO_THRESHOLD_OVERRIDES: class 'scratch'"):
        load_settings()
    monkeypatch.setenv("KITO_THRESHOLD_OVERRIDES", "scratch=0.3")
    with pytest.raises(SettingsError, match="KITO_THRESHOLD_OVERRIDES: not valid JSON"):
        load_settings()
