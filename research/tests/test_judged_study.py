"""The studies on judged photos: thresholds chosen again on them (research.judged_study), the
threshold probe's choosers, and the decode check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from judged_data import write_mixed
from tiny_package import build_tiny_package

from qc_model.catalog import default_catalog_dir
from qc_model.manifest import Manifest
from training.judged import gate_passed
from training.synth.generate import SynthOptions, generate_dataset


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 clean 1024 px photos and 4 defocused ones, every photo in val and in test."""
    return write_mixed(tmp_path_factory.mktemp("judged"))


def test_the_threshold_study_scores_both_populations(
    mixed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from research.judged_study import main
    from training.evaluate import evaluate_package

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


def test_the_decode_check_scores_the_service_decode_beside_the_whole_file(tmp_path: Path) -> None:
    from research.decode_check import compare

    opts = SynthOptions(count=2, size=2048, defect_rate=0.5, seed=6, designs=("KQ-CUFF-BR-65",))
    generate_dataset(default_catalog_dir(), tmp_path / "d", opts, workers=1)
    pkg = build_tiny_package(tmp_path / "tiny")
    res = compare(pkg, tmp_path / "d", judged_only=False, workers=1)
    assert res["photos"] == 2
    for way in ("whole file", "service decode"):
        assert set(res[way]) == {"macro_f1", "recall", "false_hold"}
    # The service decoded these 2048 px JPEGs at half size: the crops differ a little.
    assert 0.0 < res["abs_diff_probs"]["max"] < 0.5


def test_the_threshold_probe_refuses_judged_val_photos_without_a_defect(
    mixed: Path, tmp_path: Path
) -> None:
    from research.threshold_probe import main

    val = Manifest.read(mixed / "manifest.jsonl").split("val")
    judged = gate_passed(val, mixed)
    # The fixture's val pieces that the gate passes are all good ones: nothing to fit on.
    assert judged.any() and not any(r.labels for r, j in zip(val, judged, strict=True) if j)
    pkg = build_tiny_package(tmp_path / "tiny")
    spec = f"{mixed / 'manifest.jsonl'}:val"
    with pytest.raises(SystemExit, match="no judged val photo has a defect to fit on"):
        main([str(pkg), "--val", spec, "--test", spec])


def test_the_threshold_probe_prints_both_choosers_per_target(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import research.judged_study
    from research.judged_study import JudgedScores
    from research.threshold_probe import TARGETS, main

    rng = np.random.default_rng(0)
    y = rng.random((600, 3)) < 0.1
    p = 1 / (1 + np.exp(-(rng.normal(-2, 1, y.shape) + 3 * y)))
    gate = rng.random(600) < 0.8
    scores = JudgedScores(
        ["scratch", "bent", "tarnish"], 0.97, [0.5] * 3, (p, y, gate), (p, y, gate)
    )
    monkeypatch.setattr(research.judged_study, "judged_scores", lambda *a, **k: scores)
    monkeypatch.setattr("research.judged_study.records_at", lambda spec: ([], tmp_path))
    main(["pkg", "--val", "v", "--test", "t"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == f"judged photos: {int(gate.sum())} val, {int(gate.sum())} test"
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in lines[3:]]
    assert [(float(r[0]), r[1]) for r in rows] == [
        (t, c) for t in TARGETS for c in ("common recall level", "greedy per class")
    ]
    for target, _, val_recall, *_ in rows:
        assert float(val_recall) >= float(target)


def test_the_threshold_probe_names_a_missing_manifest(tmp_path: Path) -> None:
    from research.threshold_probe import main

    pkg = build_tiny_package(tmp_path / "tiny")
    with pytest.raises(SystemExit, match="no manifest at"):
        main([str(pkg), "--val", str(tmp_path / "none"), "--test", str(tmp_path / "none")])
