"""The real inspector: a tiny exported model package through gate, ONNX, spec checks, verdict."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from model_package import build_tiny_package, mat_photo

from qc_model.catalog import load_catalog
from qc_model.decode import decode_photo
from qc_model.fingerprint import FRAME_MAT
from serving.app import create_app
from serving.core.auth import create_user
from serving.core.settings import Settings
from serving.inspection.model_inspector import (
    SERVICE_THREADS_PER_INSPECTION,
    ModelInspector,
    load_inspector,
)

DESIGN = "KQ-HOOP-BR-30"  # a pair of 30 mm hoops, ± 1.5 mm


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_package(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="module")
def inspector(model_dir: Path) -> ModelInspector:
    status = load_inspector(model_dir)
    assert isinstance(status.inspector, ModelInspector), status.reason
    assert status.inspector.model_version == "tiny@tiny-1"
    return status.inspector


def test_the_service_gives_each_inspection_one_thread(model_dir: Path) -> None:
    # Requests already run one inspection per core; thread pools on top only burn CPU.
    before = cv2.getNumThreads()
    cv2.setNumThreads(2)
    try:
        inspector = load_inspector(model_dir).inspector
        assert isinstance(inspector, ModelInspector)
        assert cv2.getNumThreads() == SERVICE_THREADS_PER_INSPECTION == 1
        opts = inspector.inferencer.package.session.get_session_options()
        assert opts.intra_op_num_threads == 1
    finally:
        cv2.setNumThreads(before)


def _jpeg(img: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()


def test_photo_without_mat_is_a_retake(inspector: ModelInspector, catalog_dir: Path) -> None:
    design = load_catalog(catalog_dir)[DESIGN]
    blank = decode_photo(_jpeg(np.full((600, 800, 3), 128, np.uint8)))
    out = inspector.inspect([blank], design)
    assert out.verdict == "retake"
    assert "no_mat" in out.details["gate"][0]["retake_codes"]
    assert out.details["gate"][0]["messages"]["sw"]  # the artisan is told what to fix
    assert set(out.timings_ms) == {"gate", "model", "spec", "verdict", "fingerprint"}
    assert out.details["fingerprints"][0]["frame"] == "photo"  # no mat: the whole photo


def test_right_and_wrong_size_on_the_mat(inspector: ModelInspector, catalog_dir: Path) -> None:
    design = load_catalog(catalog_dir)[DESIGN]
    good = inspector.inspect([decode_photo(_jpeg(mat_photo(4.0, 30.0)))], design)
    assert good.details["gate"][0]["passed"], good.details["gate"]
    size = next(c for c in good.details["spec_checks"] if c["name"] == "size_outer_diameter")
    assert size["result"] == "pass" and abs(size["measured"] - 30.0) < 1.0
    assert good.verdict != "retake"
    # Each photo's fingerprint, taken in the mat's frame, for serving.fingerprints.
    (fp,) = good.details["fingerprints"]
    assert fp["frame"] == FRAME_MAT and len(fp["phash"]) == 16 and fp["cells"]
    big = inspector.inspect([decode_photo(_jpeg(mat_photo(4.0, 36.0)))], design)
    size = next(c for c in big.details["spec_checks"] if c["name"] == "size_outer_diameter")
    assert size["result"] == "fail" and big.verdict == "fail"


def test_a_single_label_package_holds_on_its_own_defect_class(tmp_path: Path) -> None:
    # An imported set's classes (kito data import stores its good label as "good"): the other
    # class may hold a piece although the taxonomy does not name it; "good" never does.
    pkg = build_tiny_package(
        tmp_path / "single", classes=["defective", "good"], task="single_label"
    )
    inspector = load_inspector(pkg).inspector
    assert isinstance(inspector, ModelInspector)
    assert sorted(inspector.bands) == ["defective"]


def test_service_with_model_package(settings: Settings, model_dir: Path) -> None:
    s = settings.model_copy(update={"model_dir": model_dir})
    app = create_app(s)
    with TestClient(app) as c:
        ready = c.get("/readyz")
        assert (
            ready.status_code == 200 and "tiny@tiny-1" in ready.json()["checks"]["model"]["detail"]
        )
        with app.state.sessionmaker() as session:
            _, token = create_user(session, name="A", role="artisan")
        r = c.post(
            "/api/v1/inspections",
            headers={"Authorization": f"Bearer {token}"},
            data={"design_id": DESIGN, "piece_id": "P-1"},
            files=[("photos", ("a.jpg", _jpeg(mat_photo(4.0, 36.0)), "image/jpeg"))],
        )
        assert r.status_code == 201, r.json()
        body = r.json()
        assert body["status"] == "inspected" and body["verdict"] == "fail"
        assert body["model_version"] == "tiny@tiny-1"
        stages = {"decode", "store", "model.gate", "model.model", "model.spec", "model.verdict"}
        assert stages <= set(body["timings_ms"])
        # The database write cannot time itself into the row: it comes as a header.
        assert "db;dur=" in r.headers["Server-Timing"]
        assert "model-gate;dur=" in r.headers["Server-Timing"]
        metrics = c.get("/metrics").text
        labels = f'design="{DESIGN}",model_version="tiny@tiny-1",verdict="fail"'
        assert f"kito_verdicts_total{{{labels}}} 1.0" in metrics


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_no_torch_with_the_real_model(settings: Settings, model_dir: Path) -> None:
    s_json = settings.model_copy(update={"model_dir": model_dir}).model_dump_json()
    photo = model_dir.parent / "tiny-photos" / "p0.png"
    script = textwrap.dedent(
        f"""
        import sys
        from fastapi.testclient import TestClient
        from serving.app import create_app
        from serving.core.auth import create_user
        from serving.core.settings import Settings
        s = Settings.model_validate_json({s_json!r})
        app = create_app(s)
        with TestClient(app) as c:
            with app.state.sessionmaker() as session:
                _, token = create_user(session, name="A", role="artisan")
            photo = open({str(photo)!r}, "rb").read()
            r = c.post("/api/v1/inspections", headers={{"Authorization": "Bearer " + token}},
                       data={{"design_id": "{DESIGN}", "piece_id": "P"}},
                       files=[("photos", ("p.png", photo, "image/png"))])
            assert r.status_code == 201 and r.json()["status"] == "inspected", r.text
        assert "torch" not in sys.modules and "training" not in sys.modules
        print("clean")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("clean")
