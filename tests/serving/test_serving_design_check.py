"""Declared design, end to end on a small real package: `kito identity fit` adds the embedding
output and references, the package loads with them, and the inspector sends a piece that looks
like another design to review (`design_mismatch`, naming it), leaves a rightly declared piece
alone, and a package without references works as before."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from model_package import build_tiny_package, mat_photo
from typer.testing import CliRunner

from qc_model.catalog import load_catalog
from qc_model.decode import decode_photo
from qc_model.errors import DataError
from qc_model.identity import EMBEDDING_NAME, REFS_FILE, DesignCheck
from qc_model.manifest import Header, Manifest, Record, sha256_file
from qc_model.package import PackageError, load_package, read_meta
from qc_model.verdict import Reason, Verdict
from serving.inspection.design_check import piece_check, with_design_check
from serving.inspection.model_inspector import ModelInspector

SMALL, LARGE = "KQ-HOOP-BR-30", "KQ-HOOP-BR-50"
TAP = "/net/features/features.1/Relu_output_0"  # the tiny network's feature map


def _jpeg(img: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()


def _data(root: Path) -> Path:
    """Six photos of each hoop (30 mm and 50 mm), each its own piece, at several scales."""
    (root / "images").mkdir(parents=True)
    records = []
    for design, diameter in ((SMALL, 30.0), (LARGE, 50.0)):
        for i, scale in enumerate((3.6, 3.8, 4.0, 4.2, 4.4, 4.6)):
            name = f"images/{design}-{i}.jpg"
            (root / name).write_bytes(_jpeg(mat_photo(scale, diameter)))
            img = cv2.imread(str(root / name))
            records.append(
                Record(
                    id=f"{design}-{i}",
                    image=name,
                    sha256=sha256_file(root / name),
                    width=img.shape[1],
                    height=img.shape[0],
                    design_id=design,
                    piece_id=f"{design}-p{i}",
                    split="train",
                    source="synthetic",
                )
            )
    Manifest(header=Header(name="hoops"), records=records).write(root / "manifest.jsonl")
    return root


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from training.identity_fit import fit_identity

    root = tmp_path_factory.mktemp("identity")
    base = build_tiny_package(root / "tiny")
    data = _data(root / "data")
    out = root / "with-refs"
    fit_identity(base, data, out, splits=("train",), false_flag=0.05, tap=TAP)
    return {"none": base, "refs": out, "data": data}


def _inspect(model_dir: Path, catalog_dir: Path, declared: str, diameter: float) -> Any:
    design = load_catalog(catalog_dir)[declared]
    inspector = ModelInspector(model_dir, threads=1)
    return inspector.inspect([decode_photo(_jpeg(mat_photo(4.1, diameter)))], design)


def _codes(out: Any) -> list[str]:
    return [r["code"] for r in out.details["verdict"]["reasons"]]


def test_fit_adds_the_embedding_and_references_and_leaves_the_scores(
    packages: dict[str, Path],
) -> None:
    pkg = load_package(packages["refs"], threads=1)
    assert pkg.identity is not None
    ref = pkg.identity.ref
    assert ref.designs == [SMALL, LARGE] and ref.references == {SMALL: 6, LARGE: 6}
    assert ref.dims == 8 and ref.threshold > 0 and ref.fitted_on["photos"] == 12
    assert read_meta(packages["refs"]).identity == ref
    # The network's own outputs are what they were; the embedding is (B, D).
    x = np.random.default_rng(0).normal(size=(2, 3, 32, 32)).astype(np.float32)
    before = ort.InferenceSession(str(packages["none"] / "model.onnx")).run(None, {"input": x})
    after = ort.InferenceSession(str(packages["refs"] / "model.onnx"))
    names = [o.name for o in after.get_outputs()]
    got = dict(zip(names, after.run(None, {"input": x}), strict=True))
    assert np.array_equal(got["probs"], before[0]) and np.array_equal(got["heatmaps"], before[1])
    assert got[EMBEDDING_NAME].shape == (2, 8)


def test_a_piece_of_another_design_goes_to_review_naming_it(
    packages: dict[str, Path], catalog_dir: Path
) -> None:
    out = _inspect(packages["refs"], catalog_dir, SMALL, 50.0)
    check = out.details["design_check"]
    assert check["flagged"] and check["likely_design"] == LARGE and check["declared"] == SMALL
    assert check["ratio"] > check["threshold"]
    assert out.verdict == "review" and _codes(out)[0] == "design_mismatch"
    assert LARGE in out.details["verdict"]["reasons"][0]["text"]
    assert "mtu" in check["messages"]["sw"] and "person" in check["messages"]["en"]


def _verdict(decision: str) -> Verdict:
    reasons = [Reason(code="scratch", text="scratch in band")] if decision == "review" else []
    return Verdict(decision=decision, reasons=reasons, defects=[], checks=[], scores={}, photos=[])


def test_a_flag_turns_a_pass_or_review_into_a_review_naming_the_likely_design() -> None:
    flag = {"flagged": True, "declared": SMALL, "likely_design": LARGE}
    for decision in ("pass", "review"):
        v = with_design_check(_verdict(decision), flag)
        assert v.decision == "review" and v.reasons[0].code == "design_mismatch"
        assert LARGE in v.reasons[0].text and SMALL in v.reasons[0].text
        assert [r.code for r in v.reasons[1:]] == [r.code for r in _verdict(decision).reasons]
    for decision in ("fail", "retake"):
        assert with_design_check(_verdict(decision), flag) == _verdict(decision)
    assert with_design_check(_verdict("pass"), {**flag, "flagged": False}).decision == "pass"
    assert with_design_check(_verdict("pass"), None).decision == "pass"


def test_the_piece_takes_the_median_of_its_photos() -> None:
    checks = [
        DesignCheck(SMALL, 2.0, LARGE, True),
        DesignCheck(SMALL, 0.5, LARGE, False),
        DesignCheck(SMALL, 0.6, "KQ-RING-BR-21", False),
        None,
    ]
    piece = piece_check(checks, threshold=1.2)
    assert piece is not None and piece["ratio"] == 0.6 and not piece["flagged"]
    assert piece["likely_design"] == LARGE and piece["photos"][3] is None
    assert piece_check(checks[:1], threshold=1.2)["flagged"]  # type: ignore[index]
    assert piece_check([None], threshold=1.2) is None


def test_a_rightly_declared_piece_is_not_flagged(
    packages: dict[str, Path], catalog_dir: Path
) -> None:
    for declared, diameter in ((SMALL, 30.0), (LARGE, 50.0)):
        out = _inspect(packages["refs"], catalog_dir, declared, diameter)
        assert not out.details["design_check"]["flagged"], out.details["design_check"]
        assert "design_mismatch" not in _codes(out)


def test_a_design_without_references_is_not_checked(
    packages: dict[str, Path], catalog_dir: Path
) -> None:
    out = _inspect(packages["refs"], catalog_dir, "KQ-RING-BR-21", 30.0)
    assert "design_check" not in out.details
    assert "design_mismatch" not in _codes(out)


def test_a_package_without_references_works_as_before(
    packages: dict[str, Path], catalog_dir: Path
) -> None:
    out = _inspect(packages["none"], catalog_dir, SMALL, 50.0)
    assert "design_check" not in out.details and "design_mismatch" not in _codes(out)


def test_references_without_the_embedding_output_are_refused(
    packages: dict[str, Path], tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in packages["refs"].iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    (broken / REFS_FILE).write_bytes(b"changed")
    with pytest.raises(PackageError, match=re.escape(REFS_FILE)):
        load_package(broken, threads=1)


def test_fit_errors_name_the_problem(packages: dict[str, Path], tmp_path: Path) -> None:
    from training.identity_fit import fit_identity

    with pytest.raises(DataError, match="no photos in split"):
        fit_identity(packages["none"], packages["data"], tmp_path / "a", splits=("val",), tap=TAP)
    with pytest.raises(DataError, match="need two or more"):
        fit_identity(packages["none"], packages["data"], tmp_path / "b", min_refs=7, tap=TAP)
    with pytest.raises(DataError, match="no tensor named 'nowhere'"):
        fit_identity(packages["none"], packages["data"], tmp_path / "c", tap="nowhere")
    assert not any((tmp_path / n).exists() for n in "abc")


def test_without_stages_the_pooled_feature_map_is_the_embedding(
    packages: dict[str, Path], tmp_path: Path
) -> None:
    # The tiny network has no EfficientNet stages: the map its classifier averages is used.
    import onnx

    from training.identity_graph import stage_output

    graph = onnx.load(str(packages["none"] / "model.onnx")).graph
    assert stage_output(graph) == TAP


def test_the_cli_reports_a_bad_false_flag_without_a_traceback(packages: dict[str, Path]) -> None:
    from kito.cli import app

    res = CliRunner().invoke(
        app,
        [
            "identity",
            "fit",
            "--package",
            str(packages["none"]),
            "--manifest",
            str(packages["data"]),
            "--out",
            "/tmp/never",
            "--false-flag",
            "2",
        ],
    )
    assert res.exit_code == 2 and "false-flag" in res.output and "Traceback" not in res.output


def test_a_copy_of_the_network_keeps_its_references(
    packages: dict[str, Path], tmp_path: Path
) -> None:
    from training.package_io import copy_graphs, finish_package, network_alone, staged_package

    meta = read_meta(packages["refs"])
    with staged_package(tmp_path / "copy") as tmp:
        copy_graphs(packages["refs"], tmp, meta)
        finish_package(tmp, meta.model_copy(update={"version": "copy"}))
    assert load_package(tmp_path / "copy", threads=1).identity is not None
    with staged_package(tmp_path / "alone") as tmp:
        network_alone(packages["refs"], tmp)
    assert load_package(tmp_path / "alone", threads=1).identity is not None


def test_retrain_fits_the_references_again_for_the_challenger(
    packages: dict[str, Path], tmp_path: Path
) -> None:
    import shutil

    from training.retrain import _refit_identity

    champion = read_meta(packages["refs"])
    challenger = tmp_path / "challenger"
    shutil.copytree(packages["none"], challenger)
    said: list[str] = []
    note = _refit_identity(champion, challenger, packages["data"] / "manifest.jsonl", said.append)
    assert note == "design references fitted again: 12 photos" and said == [f"      {note}"]
    ref = load_package(challenger, threads=1).identity
    assert ref is not None and ref.ref.false_flag == champion.identity.false_flag  # type: ignore[union-attr]
    # Too few photos for the champion's minimum: the challenger goes without, and says so.
    strict = champion.model_copy(
        update={"identity": champion.identity.model_copy(update={"min_refs": 50})}  # type: ignore[union-attr]
    )
    bare = tmp_path / "bare"
    shutil.copytree(packages["none"], bare)
    note = _refit_identity(strict, bare, packages["data"] / "manifest.jsonl", said.append)
    assert note.startswith("design references NOT carried over:") and "need two or more" in note
    assert load_package(bare, threads=1).identity is None
