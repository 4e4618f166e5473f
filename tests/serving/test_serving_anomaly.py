"""The inspector with a package that carries an anomaly model: unusual_surface, its heatmap and
message, the review level from settings, and a package without one working as before."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import tiny_anomaly
from model_package import build_tiny_package, mat_photo

from qc_model.anomaly import ANOMALY_BANKS, ANOMALY_META, AnomalyMeta, AnomalyModel, bank_key
from qc_model.catalog import load_catalog
from qc_model.decode import decode_photo
from qc_model.manifest import sha256_file
from qc_model.messages import UNUSUAL_SURFACE
from serving.inspection.model_inspector import ModelInspector

DESIGN = "KQ-HOOP-BR-30"


def _jpeg(img: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()


def _with_bank(base: Path, out: Path, photo: np.ndarray, usual: bool) -> Path:
    """`base` plus a tiny anomaly model for DESIGN whose bank is this photo's own patches
    (usual) or a far-off colour (every patch unusual)."""
    from training.anomaly.package import attach, staged

    with staged(out, base) as tmp:
        tiny_anomaly.write_tiny_anomaly(tmp, {DESIGN: np.zeros((4, 3), np.float32)})
        model = AnomalyModel(tmp, threads=1)
        cells, counted = model.features(model.prepare(photo, None))
        bank = cells[counted] if usual else np.full((4, 3), 5.0, np.float32)
        np.savez(tmp / ANOMALY_BANKS, **{bank_key("design", DESIGN): bank.astype(np.float16)})
        meta = model.meta.model_dump()
        meta["banks_sha256"] = sha256_file(tmp / ANOMALY_BANKS)
        meta["designs"][DESIGN]["patches"] = len(bank)
        m = AnomalyMeta.model_validate(meta)
        (tmp / ANOMALY_META).write_text(m.model_dump_json(), encoding="utf-8")
        attach(tmp, m)
    return out


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("anomaly")
    base = build_tiny_package(root / "tiny")
    photo = decode_photo(_jpeg(mat_photo(4.0, 30.0))).image
    return {
        "none": base,
        "usual": _with_bank(base, root / "usual", photo, usual=True),
        "unusual": _with_bank(base, root / "unusual", photo, usual=False),
    }


def _inspect(model_dir: Path, catalog_dir: Path, **kwargs: Any) -> Any:
    design = load_catalog(catalog_dir)[DESIGN]
    inspector = ModelInspector(model_dir, threads=1, **kwargs)
    return inspector.inspect([decode_photo(_jpeg(mat_photo(4.0, 30.0)))], design)


def _codes(out: Any) -> list[str]:
    return [r["code"] for r in out.details["verdict"]["reasons"]]


def test_an_unusual_piece_goes_to_a_person_with_the_anomaly_map(
    packages: dict[str, Path], catalog_dir: Path
) -> None:
    out = _inspect(packages["unusual"], catalog_dir)
    assert out.verdict in ("review", "fail") and UNUSUAL_SURFACE in _codes(out)
    a = out.details["anomaly"]
    assert a["photos"][0]["level"] > a["review_from"] == pytest.approx(0.98)
    assert a["photos"][0]["bank"] == f"design:{DESIGN}" and not a["photos"][0]["fallback"]
    assert "Mtu" in a["message"]["sw"] and "person" in a["message"]["en"]
    heat = out.details["heatmaps"][0]
    assert heat["class"] == UNUSUAL_SURFACE and max(map(max, heat["grid"])) == 1.0
    assert "anomaly" in out.timings_ms


def test_a_usual_piece_is_not_held_by_the_anomaly_model(
    packages: dict[str, Path], catalog_dir: Path
) -> None:
    out = _inspect(packages["usual"], catalog_dir)
    assert UNUSUAL_SURFACE not in _codes(out)
    assert out.details["anomaly"]["photos"][0]["level"] < 0.5
    assert out.details["anomaly"]["message"] is None
    assert out.details["heatmaps"][0]["class"] != UNUSUAL_SURFACE


def test_settings_override_the_review_level(packages: dict[str, Path], catalog_dir: Path) -> None:
    out = _inspect(
        packages["usual"], catalog_dir, threshold_overrides={UNUSUAL_SURFACE: (0.0, 1.0)}
    )
    assert UNUSUAL_SURFACE in _codes(out)
    assert out.details["thresholds"]["anomaly_review"] == 0.0
    assert UNUSUAL_SURFACE in out.details["thresholds"]["overridden"]


def test_a_package_without_an_anomaly_model_works_as_before(
    packages: dict[str, Path], catalog_dir: Path
) -> None:
    # The override is ignored, not an error: a hot swap to such a package must not stop serving.
    out = _inspect(packages["none"], catalog_dir, threshold_overrides={UNUSUAL_SURFACE: (0.5, 1)})
    assert "anomaly" not in out.details and "anomaly" not in out.timings_ms
    assert UNUSUAL_SURFACE not in _codes(out)
    assert out.details["thresholds"]["anomaly_review"] is None


def test_the_anomaly_model_runs_without_torch(packages: dict[str, Path], catalog_dir: Path) -> None:
    photo = packages["unusual"].parent / "p.jpg"
    photo.write_bytes(_jpeg(mat_photo(4.0, 30.0)))
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from qc_model.catalog import load_catalog
        from qc_model.decode import decode_photo
        from serving.inspection.model_inspector import ModelInspector
        inspector = ModelInspector(Path({str(packages["unusual"])!r}), threads=1)
        design = load_catalog(Path({str(catalog_dir)!r}))["{DESIGN}"]
        out = inspector.inspect([decode_photo(Path({str(photo)!r}).read_bytes())], design)
        assert "unusual_surface" in [r["code"] for r in out.details["verdict"]["reasons"]]
        assert "torch" not in sys.modules and "training" not in sys.modules
        print("clean")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("clean")


def test_the_registry_store_carries_the_anomaly_model(
    packages: dict[str, Path], tmp_path: Path
) -> None:
    import shutil

    from qc_model.package import PackageError, load_package
    from serving.registry.model_store import put_package, unpack
    from serving.store.storage import LocalObjectStore

    store = LocalObjectStore(tmp_path / "store")
    stored = put_package(store, packages["unusual"])
    folder = unpack(store, tmp_path / "cache", stored.sha256, stored.meta_sha256)
    pkg = load_package(folder, threads=1)
    assert pkg.anomaly is not None and pkg.anomaly.covers(DESIGN)
    broken = tmp_path / "broken"
    shutil.copytree(packages["unusual"], broken)
    (broken / ANOMALY_BANKS).unlink()
    with pytest.raises(PackageError, match=r"lacks anomaly_banks\.npz"):
        put_package(store, broken)
