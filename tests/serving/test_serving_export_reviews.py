"""`kito data export-reviews`: QC decisions become a manifest version that training reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from order_helpers import make_order
from photo_samples import good_photos, jpeg
from typer.testing import CliRunner
from upload_helpers import DESIGN, post

from qc_model.errors import DataError
from qc_model.manifest import Manifest, sha256_file
from serving.review.export_reviews import export_reviews


def _decide(client: TestClient, hq: dict[str, str], review_id: str, kind: str, **body: Any):
    r = client.post(f"/api/v1/reviews/{review_id}/{kind}", headers=hq, json=body)
    assert r.status_code == 201, r.json()
    return r.json()


@pytest.fixture
def decided(client: TestClient, make_user, inspector) -> dict[str, Any]:
    """Five fail verdicts on one order, decided five ways (one corrected)."""
    artisan, ha = make_user("artisan", "Wanjiru")
    _, hq = make_user("qc", "Njeri")
    make_order(client, hq, artisan, {f"P{i}": 100 for i in range(5)})
    inspector.verdict = "fail"
    inspector.details = {"verdict": {"defects": ["scratch"], "scores": {}, "reasons": []}}
    heic = good_photos()["heic"]
    uploads = {
        "P0": [("a.jpg", jpeg(330, 240), "image/jpeg"), (heic[1], heic[0], heic[2])],
        "P1": [("b.jpg", jpeg(340, 240), "image/jpeg")],
        "P2": [("c.jpg", jpeg(350, 240), "image/jpeg")],
        "P3": [("d.jpg", jpeg(360, 240), "image/jpeg")],
        "P4": [("e.jpg", jpeg(370, 240), "image/jpeg")],
    }
    for p, photos in uploads.items():
        assert post(client, ha, photos, piece_id=p, order_id="ORD-1").status_code == 201
    items = {
        i["piece_id"]: i["id"] for i in client.get("/api/v1/reviews", headers=hq).json()["data"]
    }
    _decide(client, hq, items["P0"], "decision", decision="reject", labels=["scratch", "bent"])
    _decide(client, hq, items["P1"], "decision", decision="approve", labels=[])
    # No label, only a note ("other"): the desk allows it, but it teaches no class.
    _decide(client, hq, items["P2"], "decision", decision="reject", labels=[], note="odd clasp")
    _decide(client, hq, items["P3"], "decision", decision="reject", labels=["bent"])
    _decide(client, hq, items["P3"], "corrections", decision="reject", labels=["tarnish"])
    # P4 stays open: not a labelled example yet.
    return {"artisan": artisan, "items": items}


def test_export_writes_a_manifest_training_reads(
    client: TestClient, decided, tmp_path: Path
) -> None:
    out = tmp_path / "reviewed"
    with client.app.state.sessionmaker() as s:  # type: ignore[attr-defined]
        result = export_reviews(s, client.app.state.store, out)  # type: ignore[attr-defined]
    assert result.decisions == 4 and len(result.skipped) == 1
    assert "rejected without a defect label" in result.skipped[0]

    m = Manifest.read(out)
    assert m.header.version == result.manifest.header.version == m.content_hash()
    assert m.header.task == "multilabel" and m.header.recipe["command"].endswith("export-reviews")
    by_piece: dict[str, list[Any]] = {}
    for r in m.records:
        by_piece.setdefault(r.meta["piece_id"], []).append(r)
    assert sorted(by_piece) == ["P0", "P1", "P3"]
    assert [r.labels for r in by_piece["P0"]] == [["scratch", "bent"]] * 2  # taxonomy order
    assert by_piece["P1"][0].labels == []  # approved: a good piece
    (p3,) = by_piece["P3"]
    assert p3.labels == ["tarnish"] and p3.meta["corrected"] is True  # the correction wins
    for r in m.records:
        assert r.source == "reviewed" and r.design_id == DESIGN
        assert r.artisan_id == str(decided["artisan"]) and r.piece_id.startswith("ORD-1/")
        assert r.meta["model_labels"] == ["scratch"] and r.split in {"train", "val", "test"}
        assert sha256_file(out / r.image) == r.sha256
    jpeg_rec, heic_rec = by_piece["P0"]
    assert jpeg_rec.image.endswith(".jpg") and jpeg_rec.meta["position"] == 0
    # HEIC is converted to PNG for OpenCV; the original's hash stays in meta.
    assert heic_rec.image.endswith(".png") and heic_rec.meta["source_sha256"] != heic_rec.sha256
    assert (heic_rec.width, heic_rec.height) == (320, 240)
    assert len({r.split for r in by_piece["P0"]}) == 1  # a piece's photos stay together

    # Training's own reader takes it, and every image it lists is there.
    from training.dataset import load_manifest, split_records

    manifest, root = load_manifest(out)
    assert root == out and len(manifest.records) == 4
    assert sum(len(split_records(manifest, root, s)) for s in ("train", "val", "test")) == 4

    # The same decisions give the same version (the folder's name is part of the header).
    store = client.app.state.store  # type: ignore[attr-defined]
    with client.app.state.sessionmaker() as s:  # type: ignore[attr-defined]
        again = export_reviews(s, store, tmp_path / "elsewhere" / "reviewed")
    assert again.manifest.header.version == m.header.version


def test_nothing_to_export_is_a_clear_error(client: TestClient, decided, tmp_path) -> None:
    from datetime import UTC, datetime

    store = client.app.state.store  # type: ignore[attr-defined]
    future = datetime(2999, 1, 1, tzinfo=UTC)
    sessions = client.app.state.sessionmaker  # type: ignore[attr-defined]
    with sessions() as s, pytest.raises(DataError, match="since"):
        export_reviews(s, store, tmp_path / "none", since=future)


def test_cli(client: TestClient, decided, settings, tmp_path: Path) -> None:
    from kito.cli import app

    env = {
        "KITO_DATA_DIR": str(settings.data_dir),
        "KITO_DATABASE_URL": settings.db_url,
        "KITO_CATALOG_DIR": str(settings.catalog_dir),
    }
    out = tmp_path / "cli-export"
    r = CliRunner().invoke(app, ["data", "export-reviews", "--out", str(out)], env=env)
    assert r.exit_code == 0, r.output
    assert "wrote 4 photos from 4 QC decisions" in r.stdout
    assert len(Manifest.read(out).records) == 4
    r = CliRunner().invoke(
        app, ["data", "export-reviews", "--out", str(out), "--since", "soon"], env=env
    )
    assert r.exit_code == 2 and "--since" in r.stderr
