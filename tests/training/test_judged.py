"""training.judged: the photos the service would judge, and `kito eval --package` on them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tiny_package import build_tiny_package

from qc_model.catalog import default_catalog_dir
from qc_model.gate import check_photo
from qc_model.inference import read_image
from qc_model.manifest import Header, Manifest
from training.judged import gate_passed
from training.synth.generate import SynthOptions, generate_dataset


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 clean 1024 px photos and 4 defocused ones, every photo in val and in test."""
    root = tmp_path_factory.mktemp("judged")
    records = []
    for name, force, count in (("clean", (), 8), ("blurred", ("defocus_blur",), 4)):
        opts = SynthOptions(
            count=count, size=1024, defect_rate=0.5, difficulty=0.0, seed=5,
            designs=("KQ-CUFF-BR-65",), force_capture=force,
        )  # fmt: skip
        m = generate_dataset(default_catalog_dir(), root / name, opts, workers=1)
        # Half of each group's pieces in val, half in test (two photos per piece).
        for i, r in enumerate(m.records):
            split = "val" if i < count // 2 else "test"
            new = {"id": f"{name}-{r.id}", "image": f"{name}/{r.image}", "split": split}
            records.append(r.model_copy(update=new))
    Manifest(header=Header(name="mixed", classes=m.header.classes), records=records).write(
        root / "manifest.jsonl"
    )
    return root


def test_the_gate_flags_are_the_gates_own_verdicts(mixed: Path) -> None:
    val = Manifest.read(mixed / "manifest.jsonl").split("val")
    flags = gate_passed(val, mixed)
    alone = [check_photo(read_image(mixed / r.image)).passed for r in val[:3]]
    assert list(flags[:3]) == alone  # the design only tightens px/mm; a cuff's limits are loose
    clean = flags[[r.image.startswith("clean/") for r in val]]
    blurred = flags[[r.image.startswith("blurred/") for r in val]]
    assert clean.mean() >= 0.75 and not blurred.any()
    assert np.array_equal(gate_passed(val, mixed, workers=2), flags)


def test_eval_reports_the_judged_photos_beside_all(mixed: Path, tmp_path: Path) -> None:
    from training.evaluate import evaluate_package

    pkg = build_tiny_package(tmp_path / "tiny")
    m = evaluate_package(pkg, mixed / "manifest.jsonl", tmp_path / "eval").metrics
    test = Manifest.read(mixed / "manifest.jsonl").split("test")
    passed = gate_passed(test, mixed)
    j = m["judged"]
    assert m["scores"]["photos"] == 6 and j["scores"]["photos"] == int(passed.sum())
    assert j["retake_share"] == pytest.approx(1 - passed.mean())
    html = (tmp_path / "eval" / "index.html").read_text()
    assert "Per class, photos the gate passes" in html


def test_the_threshold_study_scores_both_populations(
    mixed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from training.evaluate import evaluate_package
    from training.judged import main

    pkg = build_tiny_package(tmp_path / "tiny")
    manifest = mixed / "manifest.jsonl"
    main([str(pkg), "--val", f"{manifest}:val", "--test", f"{manifest}:test"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 6 and lines[2].startswith("| the package's | all test photos | 6 |")
    m = evaluate_package(pkg, manifest, tmp_path / "eval").metrics
    own_all = lines[2].split("|")
    assert float(own_all[4]) == pytest.approx(m["scores"]["macro_f1"], abs=5e-4)
    assert float(own_all[6]) == pytest.approx(
        m["scores"]["any_defect"]["false_hold_rate"], abs=5e-4
    )
    n_judged = m["judged"]["scores"]["photos"]
    assert lines[3].startswith(f"| the package's | judged | {n_judged} |")
    assert lines[5].startswith(f"| judged val photos | judged | {n_judged} |")
