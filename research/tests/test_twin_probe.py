"""research.twin_probe: does a score rise when the defect is there and nothing else changes?"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from tiny_package import build_tiny_package

from qc_model.catalog import default_catalog_dir
from qc_model.errors import DataError
from research.twin_probe import TILE, contrast, main, pair_stats, probe, write_sheet
from training.synth.generate import SynthOptions, generate_dataset


def test_pair_stats_tell_a_score_that_follows_the_defect_from_one_that_does_not() -> None:
    twin = np.array([0.0, 1.0, 2.0, 3.0])
    sees = pair_stats(twin + 5.0, twin)  # every photo above every twin
    assert sees["auroc_photo_vs_twin"] == 1.0 and sees["share_rises"] == 1.0
    blind = pair_stats(twin.copy(), twin)  # the top cell lies elsewhere: nothing moves
    assert blind["auroc_photo_vs_twin"] == 0.5 and blind["share_unchanged"] == 1.0
    some = pair_stats(np.array([0.0, 1.6, 2.0, 3.0]), twin)  # one of four rises by 0.6
    assert some["share_rises"] == 0.25 and some["share_unchanged"] == 0.75
    assert some["median_rise"] == 0.0 and some["pairs"] == 4.0
    with pytest.raises(DataError, match="one score per photo"):
        pair_stats(np.zeros(3), np.zeros(2))


def test_the_probe_renders_each_photo_and_its_twin_through_each_package(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    opts = SynthOptions(count=10, size=384, defect_rate=1.0, difficulty=0.3, seed=5)
    m = generate_dataset(default_catalog_dir(), tmp_path / "d", opts, workers=1)
    pkg = build_tiny_package(tmp_path / "pkg")
    labelled = [r.id for r in m.records if "scratch" in r.labels]
    assert labelled  # the seed gives scratched photos
    rows, summary = probe(tmp_path / "d", "scratch", [pkg], judged_only=False)
    assert [r["id"] for r in rows] == labelled
    # The tiny package has no branch: only its served score is probed.
    st = summary["packages"][str(pkg)]
    assert set(st) == {"served"} and st["served"]["pairs"] == len(labelled)
    # Each twin is a different render (the scratch gone), each photo the recorded one.
    assert any(r[str(pkg)]["photo"] != r[str(pkg)]["twin"] for r in rows)
    with pytest.raises(DataError, match="not a visual defect"):
        probe(tmp_path / "d", "wrong_size", [pkg], judged_only=False)
    with pytest.raises(DataError, match="does not score pitting"):
        probe(tmp_path / "d", "pitting", [pkg], judged_only=False)
    assert all(r["contrast"]["max_delta_e"] > 0 for r in rows)  # the scratch changed pixels
    groups = summary["by_contrast"]
    assert sum(g["photos"] for g in groups.values()) == len(rows)
    for name, faint in (("no pixel at ΔE >= 12", True), ("some pixel at ΔE >= 12", False)):
        z = [r[str(pkg)]["photo"]["served"] for r in rows
             if (r["contrast"]["px_delta_e_12"] == 0) == faint]  # fmt: skip
        assert groups[name]["photos"] == len(z)
        # The median of the served logits, as a probability (nan for an empty group).
        want = 1 / (1 + np.exp(-np.median(z))) if z else np.nan
        assert groups[name]["median_p"] == pytest.approx(want, nan_ok=True)
    main(["--data", str(tmp_path / "d"), "--label", "scratch", "--package", str(pkg),
          "--out", str(tmp_path / "o"), "--all-photos", "--limit", "2",
          "--sheet", "5"])  # fmt: skip
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["photos"] == 2
    out = capsys.readouterr().out
    assert "2 photos labelled scratch" in out and "the 2 lowest scored" in out
    sheet = cv2.imread(str(tmp_path / "o" / "lowest.jpg"))
    assert sheet.shape == (TILE, 2 * 3 * TILE, 3)  # two photos, each photo | twin | diff
    with pytest.raises(SystemExit, match=r"manifest\.jsonl: cannot be read"):
        main(["--data", str(tmp_path / "o"), "--label", "scratch", "--package", str(pkg),
              "--out", str(tmp_path / "x")])  # fmt: skip


def test_contrast_measures_the_change_and_cuts_the_tile_around_it() -> None:
    photo = np.full((400, 300, 3), 128, np.uint8)
    twin = photo.copy()
    photo[390, 10:40] = (128, 128, 255)  # a red line near the bottom edge: only here they differ
    stats, tile = contrast(photo, twin)
    assert stats["px_delta_e_6"] == 30 and stats["px_delta_e_12"] == 30
    assert stats["max_delta_e"] > 12
    # Clamped inside the photo: the line sits 10 px above the tile's lower edge.
    assert tile.shape == (TILE, 3 * TILE, 3)
    assert (tile[TILE - 10, 10:40, 2] == 255).all() and (tile[TILE - 10, TILE + 10, 2] == 128)
    assert (tile[TILE - 10, 2 * TILE + 10 : 2 * TILE + 40, 2] == 255).all()  # |diff| x4, clipped
    assert (tile[:, 2 * TILE :][tile[:, 2 * TILE :] > 0]).size == 30  # nothing else differs
    assert contrast(twin, twin)[0]["px_delta_e_6"] == 0


def test_the_sheet_lays_out_tiles_in_rows_and_refuses_none(tmp_path: Path) -> None:
    t = np.zeros((20, 60, 3), np.uint8)
    write_sheet([("a", t), ("b", t), ("c", t)], tmp_path / "s.jpg", per_row=2)
    assert cv2.imread(str(tmp_path / "s.jpg")).shape == (40, 120, 3)  # the last cell blank
    with pytest.raises(DataError, match="no photo"):
        write_sheet([], tmp_path / "t.jpg")
