"""The studies that score a branch: training.tile_probe and training.pool_probe."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qc_model.errors import DataError
from qc_model.manifest import Manifest
from qc_model.package import read_meta
from training.metrics import average_precision
from training.surface import attach, load_surface


def test_the_tile_probe_scores_both_ways(
    synth: Path, trained: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from training.tile_probe import main

    main([str(trained / "surface.pt"), "--val", str(synth / "calib.jsonl"), "--all-photos"])
    res = json.loads(capsys.readouterr().out)
    assert res["photos"] == 16 and res["tile"] == 64  # the fixture's training patch
    classes = load_surface(trained / "surface.pt")[1]
    for way in ("tiles", "whole"):
        assert set(res[way]) == {*classes, "seconds"}
        assert 0.0 <= res[way]["scratch"] <= 1.0
    m = Manifest.read(synth / "manifest.jsonl")
    Manifest(header=m.header, records=m.split("train")).write(synth / "train-only.jsonl")
    with pytest.raises(DataError, match="no photos in split 'val'"):
        main([str(trained / "surface.pt"), "--val", str(synth / "train-only.jsonl")])


def test_the_pool_probe_reproduces_the_package_with_one_cell(
    synth: Path, trained: Path, tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from training.evaluate import package_probs
    from training.pool_probe import SIZES, main

    pkg = tmp_path / "pkg"
    attach(tiny, trained / "surface.pt", synth / "calib.jsonl", pkg, fuse=["scratch"])
    spec = f"{synth / 'calib.jsonl'}:val"
    main([str(pkg), "--val", spec, "--test", spec, "--all-photos"])
    res = json.loads(capsys.readouterr().out)
    val = Manifest.read(synth / "calib.jsonl").split("val")
    assert res["photos"] == {"val": len(val), "test": len(val)}
    assert res["per_class"]["scratch"]["fused_in_package"]
    assert set(res["per_class"]["scratch"]) == {"fused_in_package", *map(str, SIZES)}
    # One cell is how the package pools: its fused AP is the package's own on those photos.
    probs = package_probs(pkg, val, synth, list(read_meta(pkg).classes), "pkg")
    k = list(read_meta(pkg).classes).index("scratch")
    y = np.array(["scratch" in r.labels for r in val])
    own = average_precision(probs[:, k], y)
    assert res["per_class"]["scratch"]["1"]["fused_ap"][1] == pytest.approx(own, abs=1e-6)
    assert set(res["operating"]) == {*(f"{n} cells" for n in SIZES), "per class, by val AP"}
    # The gate passes none of the fixture's 512 px photos; a package without a branch is named.
    with pytest.raises(SystemExit, match="passes none of the val photos"):
        main([str(pkg), "--val", spec, "--test", spec])
    with pytest.raises(SystemExit, match="has no surface branch"):
        main([str(tiny), "--val", spec, "--test", spec])
