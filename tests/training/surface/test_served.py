"""A package with a branch downstream: the service, the registry, thresholds without the
branch, INT8."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import tiny_anomaly

from qc_model.catalog import default_catalog_dir
from qc_model.inference import Inferencer
from qc_model.manifest import Manifest
from qc_model.package import SURFACE_FILE, PackageError, load_package, read_meta
from training.surface import attach


@pytest.mark.slow  # ~55 s on the 2-core VM: calibrates and scores both packages photo by photo
def test_int8_quantizes_the_branch_and_keeps_the_anomaly_model(
    synth: Path, trained: Path, tiny: Path, tmp_path: Path
) -> None:
    import onnx

    from qc_model.anomaly import ANOMALY_BANKS, ANOMALY_META, ANOMALY_ONNX, AnomalyModel
    from training.anomaly.package import attach as attach_anomaly
    from training.quantize import quantize_package

    pkg = tmp_path / "with-branch"
    attach(tiny, trained / "surface.pt", synth / "calib.jsonl", pkg, fuse=["scratch"])
    tiny_anomaly.write_tiny_anomaly(pkg, {"KQ-CUFF-BR-65": tiny_anomaly.grey_bank()})
    attach_anomaly(pkg, AnomalyModel(pkg, threads=1).meta)
    fp32 = read_meta(pkg)
    assert fp32.surface is not None and fp32.anomaly is not None

    # Half the photos calibrate, the other half (some of them scratched) check.
    m = Manifest.read(synth / "manifest.jsonl")
    halves = [
        r.model_copy(update={"split": ("train", "val")[i % 2]}) for i, r in enumerate(m.records)
    ]
    assert any("scratch" in r.labels for r in halves if r.split == "val")
    Manifest(header=m.header, records=halves).write(synth / "halves.jsonl")
    meta = quantize_package(
        pkg, synth / "halves.jsonl", tmp_path / "int8", calibration_count=4, max_drop=1.0
    )
    out = tmp_path / "int8"
    assert meta.precision == "int8" and meta.surface is not None
    # The branch is INT8 now, its checksum the new file's; its fusion and tiles are unchanged.
    assert meta.surface.onnx_sha256 != fp32.surface.onnx_sha256
    assert meta.surface.fusion == fp32.surface.fusion and meta.surface.config == fp32.surface.config
    report = meta.metrics["int8"]
    assert report["surface_fp32_sha256"] == fp32.surface.onnx_sha256
    assert report["validation_photos"] == 8 and report["calibration_photos"] == 4
    assert report["macro_f1_drop"] == pytest.approx(
        report["macro_f1_fp32"] - report["macro_f1_int8"]
    )
    graph = onnx.load(str(out / SURFACE_FILE)).graph
    ops = [n.op_type for n in graph.node]
    assert "QLinearConv" in ops
    # The cell classifier stays float: it makes `cell_logits`, which the fusion reads.
    assert next(n for n in graph.node if "cell_logits" in n.output).op_type == "Conv"
    # The anomaly model travels unchanged, and the package still points at it.
    assert meta.anomaly == fp32.anomaly
    for name in (ANOMALY_META, ANOMALY_ONNX, ANOMALY_BANKS):
        assert (out / name).read_bytes() == (pkg / name).read_bytes()
    assert load_package(out).anomaly is not None
    # Served scores move by quantization only.
    rec = Manifest.read(synth / "calib.jsonl").records[0]
    a = Inferencer(pkg).predict(synth / rec.image, [rec.design_id])[0].probs
    b = Inferencer(out).predict(synth / rec.image, [rec.design_id])[0].probs
    assert max(abs(a[c] - b[c]) for c in a) < 0.1


def test_the_service_scores_with_the_branch(
    synth: Path, trained: Path, tiny: Path, tmp_path: Path
) -> None:
    from qc_model.catalog import load_catalog
    from qc_model.decode import decode_photo
    from serving.inspection.model_inspector import ModelInspector
    from training.export import finish_package

    pkg = tmp_path / "served"
    attach(tiny, trained / "surface.pt", synth / "calib.jsonl", pkg, fuse=["scratch"])
    rec = Manifest.read(synth / "calib.jsonl").records[0]
    photo = decode_photo((synth / rec.image).read_bytes(), filename=Path(rec.image).name)
    design = load_catalog(default_catalog_dir())[rec.design_id or ""]
    inspector = ModelInspector(pkg)
    outcome = inspector.inspect([photo], design)
    served = outcome.details["scores"][0]
    # Uploads are decoded no coarser than the branch reads them (serving.inspection.intake).
    cfg = read_meta(pkg).surface.config  # type: ignore[union-attr]
    assert cfg.px_per_mm is not None
    assert inspector.min_px_per_mm == pytest.approx(cfg.px_per_mm / (1 + cfg.scale_tolerance))
    assert Inferencer(tiny).min_px_per_mm is None
    direct = Inferencer(pkg).predict(synth / rec.image)[0].probs
    plain = Inferencer(tiny).predict(synth / rec.image)[0].probs
    assert served["scratch"] == pytest.approx(direct["scratch"], abs=1e-4)
    assert served["scratch"] != pytest.approx(plain["scratch"], abs=1e-4)
    assert served["tarnish"] == pytest.approx(plain["tarnish"], abs=1e-4)

    # A design offset for the piece's design: the service passes the design, so its scratch
    # score moves exactly as the fusion says; a photo of another design keeps the plain fusion.
    meta = read_meta(pkg)
    assert meta.surface is not None
    f = meta.surface.fusion["scratch"]
    shifted = f.model_copy(update={"design_offsets": {design.id: 2.0, "KQ-OTHER-1": -5.0}})
    surface = meta.surface.model_copy(update={"fusion": {"scratch": shifted}})
    finish_package(pkg, meta.model_copy(update={"surface": surface}))
    served2 = ModelInspector(pkg).inspect([photo], design).details["scores"][0]
    moved = Inferencer(pkg).predict([synth / rec.image], [design.id])[0].probs
    unknown = Inferencer(pkg).predict([synth / rec.image], [None])[0].probs
    assert served2["scratch"] == pytest.approx(moved["scratch"], abs=1e-4)
    assert unknown["scratch"] == pytest.approx(direct["scratch"], abs=1e-6)
    lo = lambda q: np.log(q / (1 - q))  # noqa: E731
    assert lo(moved["scratch"]) - lo(direct["scratch"]) == pytest.approx(
        -2.0 * f.w_surface, abs=1e-3
    )
    with pytest.raises(ValueError, match="2 designs for 1 photos"):
        Inferencer(pkg).predict([synth / rec.image], [None, None])


def test_the_gate_and_spec_checks_measure_a_copy_reduced_to_their_own_size(
    synth: Path, trained: Path, tiny: Path, tmp_path: Path
) -> None:
    """A branch has photos decoded finer than the gate and the spec checks need; they measure
    a copy reduced as the decoder would have reduced the photo, and the model's crops come from
    the full photo."""
    import cv2

    from qc_model.catalog import load_catalog
    from qc_model.decode import DecodeLimits, decode_photo
    from serving.inspection.model_inspector import ModelInspector
    from training.synth.designs import load_designs
    from training.synth.photo import make_item, render_photo

    pkg = tmp_path / "served"
    attach(tiny, trained / "surface.pt", synth / "calib.jsonl", pkg, fuse=["scratch"])
    design = next(d for d in load_designs(default_catalog_dir()) if d.id == "KQ-HOOP-BR-30")
    shot = render_photo(make_item(design, 7, 0, 0.0), 7, 0, 0, 2048, 0.0, ())
    data = cv2.imencode(".jpg", shot.image, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()
    full = decode_photo(data, limits=DecodeLimits(target_long_side=2048))
    halved = decode_photo(data, limits=DecodeLimits(target_long_side=1000))
    assert max(full.size) == 2048 and max(halved.size) == 1024
    catalog = load_catalog(default_catalog_dir())
    inspector = ModelInspector(pkg)  # measures on >= 1000 px, KITO_DECODE_LONG_SIDE's default
    copy, factor = inspector.measuring_copy(full.image, catalog[design.id])
    assert factor == 2 and copy.shape == halved.image.shape
    served = inspector.inspect([full], catalog[design.id]).details
    # The gate and the spec checks saw 1024 px, and measure what they measure on the photo
    # the decoder halves for a package without a branch.
    plain = ModelInspector(tiny).inspect([halved], catalog[design.id]).details
    gate = {c["name"]: c for c in served["gate"][0]["checks"]}
    assert gate["long_side_px"]["measured"] == 1024 and served["gate"][0]["passed"]
    assert len(served["spec_checks"]) >= 2
    assert [c["result"] for c in served["spec_checks"]] == [
        c["result"] for c in plain["spec_checks"]
    ]
    for a, b in zip(served["spec_checks"], plain["spec_checks"], strict=True):
        if a["unit"] == "mm":
            assert a["measured"] == pytest.approx(b["measured"], abs=0.3)
    # The model's crop is in the full photo's pixels: where the branch's own locator puts it.
    heat = served["heatmaps"][0]
    assert heat["image_size"] == list(full.size)
    direct = Inferencer(pkg).predict(full.image)[0]
    assert np.abs(np.subtract(heat["crop_box"], direct.crop_box)).max() <= 12
    assert served["scores"][0]["scratch"] == pytest.approx(direct.probs["scratch"], abs=0.05)
    # Without a branch nothing is copied: the photo was decoded for the gate already.
    assert ModelInspector(tiny).measuring_copy(halved.image, catalog[design.id])[1] == 1


def test_the_registry_stores_and_unpacks_the_branch(
    synth: Path, trained: Path, tiny: Path, tmp_path: Path
) -> None:
    from serving.registry.model_store import put_package, unpack
    from serving.store.storage import LocalObjectStore

    pkg = tmp_path / "registered"
    meta = attach(tiny, trained / "surface.pt", synth / "calib.jsonl", pkg, fuse=["scratch"])
    assert meta.surface is not None
    store = LocalObjectStore(tmp_path / "objects")
    stored = put_package(store, pkg)
    assert store.exists(meta.surface.onnx_sha256)
    folder = unpack(store, tmp_path / "cache", stored.sha256, stored.meta_sha256)
    assert load_package(folder).surface_session is not None
    photo = synth / Manifest.read(synth / "calib.jsonl").records[0].image
    assert Inferencer(folder).predict(photo)[0].probs == Inferencer(pkg).predict(photo)[0].probs

    # A store that lost the branch's object says so instead of unpacking half a package.
    store.path(meta.surface.onnx_sha256).unlink()
    with pytest.raises(PackageError, match=r"surface\.onnx .* is not in the object store"):
        unpack(store, tmp_path / "cache-2", stored.sha256, stored.meta_sha256)
    assert not (tmp_path / "cache-2").exists() or not any((tmp_path / "cache-2").iterdir())
    # A package whose branch file is gone is refused at registration.
    (pkg / SURFACE_FILE).unlink()
    with pytest.raises(PackageError, match=r"surface\.onnx is missing"):
        put_package(store, pkg)


def test_thresholds_without_the_branch_serve_the_network_alone(
    synth: Path, trained: Path, tiny: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from kito.cli import app
    from training.calibrate import choose_thresholds
    from training.evaluate import package_probs
    from training.thresholds import rethreshold

    calib = synth / "calib.jsonl"
    branch = tmp_path / "branch"
    with_branch = attach(tiny, trained / "surface.pt", calib, branch, fuse=["scratch"])
    assert with_branch.surface is not None
    assert with_branch.dataset_versions["fusion"] == Manifest.read(calib).header.version
    out = tmp_path / "lite"
    # 512 px photos: the gate passes none, so the fit is on all val photos.
    meta = rethreshold(branch, calib, out, judged_only=False, without_branch=True)
    assert meta.surface is None and not (out / SURFACE_FILE).exists()
    mask = os.umask(0)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~mask  # not mkdtemp's private 0700
    assert load_package(out, threads=1).surface_session is None
    assert "fusion" not in meta.dataset_versions
    assert meta.dataset_versions["thresholds"] == Manifest.read(calib).header.version
    left = meta.metrics["branch_left_out"]
    assert left["from"] == f"{with_branch.name}@{with_branch.version}" and left["fused"] == [
        "scratch"
    ]
    assert left["surface_onnx_sha256"] == with_branch.surface.onnx_sha256
    # It scores what the network alone scores, and its thresholds are chosen for those scores,
    # not the fused ones.
    val = Manifest.read(calib).split("val")
    photos = [synth / r.image for r in val[:3]]
    for a, b in zip(Inferencer(tiny).predict(photos), Inferencer(out).predict(photos), strict=True):
        assert a.probs == b.probs and not b.surface_heatmaps
    classes = list(meta.classes)
    y = np.array([[c in r.labels for c in classes] for r in val])
    want = choose_thresholds(package_probs(tiny, val, synth, classes, "v"), y, classes).thresholds
    assert {c: t.threshold for c, t in meta.thresholds.items()} == {
        c: want[c].threshold for c in classes
    }
    assert meta.thresholds["scratch"] != with_branch.thresholds["scratch"]
    # The command, and what it refuses: a package with no branch, nothing half-written.
    runner = CliRunner()
    args = ["thresholds", "--calibration-manifest", str(calib), "--all-photos", "--without-branch"]
    res = runner.invoke(app, [*args, "--package", str(branch), "--out", str(tmp_path / "cli")])
    assert res.exit_code == 0, res.output
    assert "no surface branch" in res.output and read_meta(tmp_path / "cli").surface is None
    res = runner.invoke(app, [*args, "--package", str(tiny), "--out", str(tmp_path / "no")])
    assert res.exit_code != 0 and "has no surface branch to leave out" in res.output
    assert not (tmp_path / "no").exists() and not list(tmp_path.glob(".*tmp-*"))
