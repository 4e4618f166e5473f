"""An anomaly model whose features are the surface branch's cells (source "branch"): fitted
into a package with a branch, read off the branch run the inferencer makes anyway, scored and
fused into the verdict by the service, refused where the branch is not the one it was fitted on.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import onnx
import pytest

from qc_model.anomaly import ANOMALY_ONNX, AnomalyModel, FusedReview, read_anomaly_meta
from qc_model.catalog import default_catalog_dir, load_catalog
from qc_model.decode import decode_photo
from qc_model.gate import GateConfig
from qc_model.inference import Inferencer, read_image
from qc_model.manifest import Manifest, sha256_file
from qc_model.package import SURFACE_FILE, load_package, read_meta
from training.anomaly.fit import FitOptions
from training.anomaly.package import fit_anomaly
from training.surface import attach


@pytest.fixture(scope="module")
def fitted(
    synth: Path, trained: Path, tiny: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """(the package with the branch, the same with a branch-sourced anomaly model): all 16
    photos taken as good, every fourth held out to calibrate on."""
    tmp = tmp_path_factory.mktemp("branch-anomaly")
    pkg = tmp / "with-branch"
    attach(tiny, trained / "surface.pt", synth / "calib.jsonl", pkg, fuse=["scratch"])
    m = Manifest.read(synth / "manifest.jsonl")
    goods = [
        r.model_copy(update={"labels": [], "split": "val" if i % 4 == 3 else "train"})
        for i, r in enumerate(m.records)
    ]
    Manifest(header=m.header, records=goods).write(synth / "all-good.jsonl")
    out = tmp / "with-anomaly"
    opts = FitOptions(bank_size=64, min_photos=3, min_calibration=1, pool_size=4000)
    # source "auto": the branch's, as the package has a tiled one
    fit_anomaly(synth / "all-good.jsonl", out, base=pkg, opts=opts)
    return pkg, out


def test_the_banks_hold_the_branch_cells_and_the_logits_do_not_move(
    synth: Path, fitted: tuple[Path, Path]
) -> None:
    pkg, out = fitted
    meta = read_anomaly_meta(out)
    assert meta.source == "branch" and meta.onnx_sha256 is None
    assert not (out / ANOMALY_ONNX).exists()
    assert meta.branch_sha256 == sha256_file(out / SURFACE_FILE)
    assert read_meta(out).surface.onnx_sha256 == meta.branch_sha256  # type: ignore[union-attr]
    assert sorted(meta.designs) == ["KQ-CUFF-BR-65", "KQ-HOOP-BR-30"]
    names = [o.name for o in onnx.load(str(out / SURFACE_FILE)).graph.output]
    assert names == ["logits", "cell_logits", "cell_features"]
    assert meta.feature_dim == 96 and meta.config.stride == 8

    rec = Manifest.read(synth / "manifest.jsonl").records[0]
    before = Inferencer(pkg).predict(synth / rec.image, [rec.design_id])[0]
    inf = Inferencer(out)
    assert inf.branch_features and not Inferencer(pkg).branch_features
    after = inf.predict(synth / rec.image, [rec.design_id])[0]
    assert after.probs == pytest.approx(before.probs, abs=1e-6)
    assert before.cell_features is None
    assert after.cell_features is not None and after.cell_count is not None
    assert after.cell_features.shape == (int(after.cell_count.sum()), 96)


def test_a_blot_on_the_piece_scores_above_the_photo_itself(
    synth: Path, fitted: tuple[Path, Path]
) -> None:
    _, out = fitted
    inf = Inferencer(out)
    model = inf.package.anomaly
    assert model is not None and model.from_branch
    rec = Manifest.read(synth / "all-good.jsonl").records[0]
    image = read_image(synth / rec.image)
    (clean,) = inf.predict(image, [rec.design_id])
    x0, y0, x1, y1 = clean.crop_box
    blotted = image.copy()
    cy, cx, r = (y0 + y1) // 2, (x0 + x1) // 2, max(4, (x1 - x0) // 10)
    cv2.circle(blotted, (cx, cy), r, (0, 0, 255), -1)
    (dirty,) = inf.predict(blotted, [rec.design_id])
    scores = []
    for p in (clean, dirty):
        assert p.cell_features is not None and p.cell_count is not None
        a = model.score_cells(p.cell_features, p.cell_count, rec.design_id, p.crop_box)
        assert a is not None and a.bank == f"design:{rec.design_id}" and not a.fallback
        assert 0.0 <= a.level <= 1.0 and a.box == p.crop_box
        assert a.heatmap.ndim == 2 and max(a.heatmap.shape) <= 32
        scores.append(a.score)
    assert scores[1] > scores[0]
    # A design without a bank (and no family bank) is not scored.
    assert model.score_cells(clean.cell_features, clean.cell_count, "KQ-NONE", (0, 0, 1, 1)) is None
    with pytest.raises(ValueError, match="cell features"):
        model.score_cells(clean.cell_features[:1], clean.cell_count, rec.design_id, (0, 0, 1, 1))


def test_the_service_fuses_the_branch_anomaly_into_the_verdict(
    synth: Path, fitted: tuple[Path, Path], tmp_path: Path
) -> None:
    from serving.inspection.model_inspector import ModelInspector
    from training.anomaly.thresholds import write_choice

    _, out = fitted
    catalog = load_catalog(default_catalog_dir())
    # No class in its band or above (every band at 1.0): only the anomaly model can hold.
    quiet = {c: (1.0, 1.0) for c in read_meta(out).thresholds}
    # The 512 px renders are too coarse for the service's gate; this one asks only for a mat.
    lax = GateConfig(
        min_long_side_px=64, min_px_per_mm=0.1, min_tolerance_px=0.01, min_piece_fill=0.001,
        min_sharpness=0.001, min_median_luminance=0, max_clipped_fraction=1.0,
        max_crushed_fraction=1.0,
    )  # fmt: skip
    plain = ModelInspector(out, threshold_overrides=quiet, gate=lax)
    for rec in Manifest.read(synth / "all-good.jsonl").records:  # a photo the gate passes
        photo = decode_photo((synth / rec.image).read_bytes(), filename=Path(rec.image).name)
        design = catalog[rec.design_id or ""]
        first = plain.inspect([photo], design)
        if first.details["gate"][0]["passed"]:
            break
    assert first.details["gate"][0]["passed"], "the gate passes none of the renders"
    a = first.details["anomaly"]
    assert a["photos"][0]["bank"] == f"design:{rec.design_id}"
    assert a["fused"] is None and a["review_from"] == pytest.approx(0.98)
    assert first.timings_ms["anomaly"] >= 0.0
    # A fused rule whose threshold every photo reaches: held for unusual_surface (no class is
    # in its band), with the anomaly map as the heatmap.
    meta = read_anomaly_meta(out)
    rule = FusedReview(
        weight=1.0, threshold=-1e6, target_recall=0.9, manifest_version="x", good=1,
        defective=1, recall=1.0, false_hold=1.0, classifier_recall=1.0,
        classifier_false_hold=1.0,
    )  # fmt: skip
    held = tmp_path / "held"
    write_choice(out, held, meta.model_copy(update={"fused": rule}))
    outcome = ModelInspector(held, threshold_overrides=quiet, gate=lax).inspect([photo], design)
    v = outcome.details["verdict"]
    assert outcome.details["anomaly"]["fused"] == {"weight": 1.0, "threshold": -1e6, "guard": None}
    assert v["photos"][0]["fused"] is not None and v["photos"][0]["call"] == "review"
    assert "unusual_surface" in [r["code"] for r in v["reasons"]]
    assert outcome.details["heatmaps"][0]["class"] == "unusual_surface"
    assert outcome.details["anomaly"]["message"]["sw"]
    # A rule no photo reaches clears the photo, as the level would not.
    rule2 = rule.model_copy(update={"threshold": 1e6})
    write_choice(out, tmp_path / "never", meta.model_copy(update={"fused": rule2}))
    never = ModelInspector(tmp_path / "never", threshold_overrides=quiet, gate=lax).inspect(
        [photo], design
    )
    assert never.details["verdict"]["photos"][0]["call"] == "pass"
    assert "unusual_surface" not in [r["code"] for r in never.details["verdict"]["reasons"]]
    # Settings override the rule with a level: 1.0 holds nothing.
    off = ModelInspector(
        held, threshold_overrides={**quiet, "unusual_surface": (1.0, 1.0)}, gate=lax
    )
    details = off.inspect([photo], design).details
    assert details["anomaly"]["fused"] is None
    assert "unusual_surface" not in [r["code"] for r in details["verdict"]["reasons"]]


def test_a_package_whose_branch_changed_does_not_load(
    fitted: tuple[Path, Path], tmp_path: Path
) -> None:
    import shutil

    from qc_model.package import PackageError
    from training.anomaly.update import branch_mismatch
    from training.export import finish_package

    pkg, out = fitted
    meta = read_anomaly_meta(out)
    assert branch_mismatch(meta, out) is None
    assert "not the one the anomaly banks were filled from" in str(branch_mismatch(meta, pkg))
    # The branch graph without its features output, package.json made to agree with it:
    # the anomaly model names the old branch, so the package is refused with the reason.
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    shutil.copyfile(pkg / SURFACE_FILE, broken / SURFACE_FILE)
    pm = read_meta(broken)
    assert pm.surface is not None
    surface = pm.surface.model_copy(update={"onnx_sha256": sha256_file(broken / SURFACE_FILE)})
    finish_package(broken, pm.model_copy(update={"surface": surface}))
    with pytest.raises(PackageError, match=SURFACE_FILE):
        load_package(broken)
    assert AnomalyModel(out, threads=1).from_branch


def test_a_branch_source_needs_a_package_with_a_tiled_branch(
    synth: Path, tiny: Path, fitted: tuple[Path, Path], tmp_path: Path
) -> None:
    from qc_model.errors import DataError

    with pytest.raises(DataError, match="give --package"):
        fit_anomaly(synth / "all-good.jsonl", tmp_path / "a", source="branch")
    with pytest.raises(DataError, match="no surface branch"):
        fit_anomaly(synth / "all-good.jsonl", tmp_path / "b", base=tiny, source="branch")
    assert not (tmp_path / "b").exists()
    with pytest.raises(DataError, match="unknown feature source"):
        fit_anomaly(synth / "all-good.jsonl", tmp_path / "c", base=tiny, source="trunk")


@pytest.mark.slow  # ~1 min on the 2-core VM: calibrates and scores both packages photo by photo
def test_int8_leaves_a_branch_sourced_anomaly_model_out_and_says_so(
    synth: Path, fitted: tuple[Path, Path], tmp_path: Path
) -> None:
    from training.quantize import quantize_package

    _, out = fitted
    m = Manifest.read(synth / "manifest.jsonl")
    halves = [
        r.model_copy(update={"split": ("train", "val")[i % 2]}) for i, r in enumerate(m.records)
    ]
    Manifest(header=m.header, records=halves).write(synth / "halves-branch.jsonl")
    meta = quantize_package(
        out, synth / "halves-branch.jsonl", tmp_path / "int8", calibration_count=4, max_drop=1.0
    )
    assert meta.anomaly is None and meta.precision == "int8"
    assert "not carried over" in meta.metrics["int8"]["anomaly_model"]
    assert not (tmp_path / "int8" / "anomaly.json").exists()
    assert load_package(tmp_path / "int8").anomaly is None


def test_the_fused_rule_is_chosen_on_labelled_photos_for_a_target_recall(
    synth: Path, fitted: tuple[Path, Path], tmp_path: Path
) -> None:
    from qc_model.errors import DataError
    from training.anomaly.thresholds import choose_fused

    pkg, out = fitted
    meta = choose_fused(out, synth / "calib.jsonl", tmp_path / "fused", 0.5, judged_only=False)
    f = meta.fused
    assert f is not None and f.target_recall == 0.5 and f.recall >= 0.5
    assert f.weight > 0 and f.good + f.defective == 16
    assert f.classifier_threshold is not None and f.classifier_threshold_false_hold is not None
    assert f.guard_budget == 0.02 and (f.guard is None or 0.0 < f.guard <= 1.0)
    served = load_package(tmp_path / "fused").anomaly
    assert served is not None and served.meta.fused == f
    # The package without the branch-sourced model has no rule to choose.
    with pytest.raises(DataError, match="source 'branch'"):
        choose_fused(pkg, synth / "calib.jsonl", tmp_path / "none", 0.5, judged_only=False)
