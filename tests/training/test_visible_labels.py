"""training.visible_labels / `kito data visible`: labels the photo cannot show leave the data."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from kito.cli import app
from qc_model.catalog import default_catalog_dir
from qc_model.errors import DataError
from qc_model.manifest import Header, Manifest, Record
from qc_model.taxonomy import VISUAL_DEFECTS
from training.synth.generate import SynthOptions, generate_dataset
from training.visibility import label_visibility
from training.visible_labels import hold_floor, relabel, visible_manifest

runner = CliRunner()


def rec(i: int, labels: list[str]) -> Record:
    masks = {lab: f"masks/{i}-{lab}.png" for lab in labels if lab in VISUAL_DEFECTS}
    return Record(
        id=f"s-{i}", image=f"images/{i}.jpg", piece_id=f"p{i}", labels=labels, masks=masks,
        split="test", source="synthetic", sha256=f"{i:064x}", width=8, height=8,
    )  # fmt: skip


def test_unseen_labels_leave_and_photos_left_with_none_are_dropped() -> None:
    records = [
        rec(0, []),  # good: untouched
        rec(1, ["scratch", "bent"]),  # the scratch is unseen, the bend plain
        rec(2, ["pitting"]),  # shows nothing of its one defect: dropped
        rec(3, ["pitting", "wrong_size"]),  # a size defect needs no pixel: kept
        rec(4, ["scratch"]),  # exactly at the floor: seen
    ]
    visible = {
        ("s-1", "scratch"): 4, ("s-1", "bent"): 900, ("s-2", "pitting"): 0,
        ("s-3", "pitting"): 2, ("s-4", "scratch"): 5,
    }  # fmt: skip
    kept, stats = relabel(records, visible, min_px=5)
    by_id = {r.id: r for r in kept}
    assert sorted(by_id) == ["s-0", "s-1", "s-3", "s-4"]
    assert by_id["s-0"] == records[0]
    assert by_id["s-1"].labels == ["bent"] and list(by_id["s-1"].masks) == ["bent"]
    assert by_id["s-1"].meta["visible_px"] == {"scratch": 4, "bent": 900}
    assert by_id["s-1"].meta["unseen"] == ["scratch"]
    assert by_id["s-3"].labels == ["wrong_size"] and by_id["s-3"].masks == {}
    assert by_id["s-4"].labels == ["scratch"] and by_id["s-4"].meta["unseen"] == []
    assert stats.dropped == ["s-2"]
    assert (stats.photos, stats.defective) == (5, 4)
    assert stats.labels == {"scratch": 2, "bent": 1, "pitting": 2}
    assert stats.unseen == {"scratch": 1, "pitting": 2}
    assert "scratch: 1 of 2 labels unseen" in stats.summary()


def test_a_label_without_a_measurement_is_an_error() -> None:
    with pytest.raises(DataError, match=r"s-1: no visibility measured for \['bent'\]"):
        relabel([rec(1, ["scratch", "bent"])], {("s-1", "scratch"): 30})


def test_hold_floor_is_the_share_of_unseen_photos_the_recall_still_needs() -> None:
    # 100 defective, 9 show nothing: recall 0.97 needs 97, the 91 others give 91, so 6 of the
    # 9 must be held, and photos scored like good ones are held at the same rate.
    assert hold_floor(100, 9, 0.97) == pytest.approx(6 / 9)
    assert hold_floor(100, 2, 0.97) == 0.0  # the visible ones reach the target alone
    assert hold_floor(100, 0, 0.97) == 0.0
    assert hold_floor(100, 100, 0.5) == pytest.approx(0.5)
    with pytest.raises(DataError):
        hold_floor(10, 11, 0.97)


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("vis") / "data"
    opts = SynthOptions(count=12, size=384, defect_rate=1.0, difficulty=0.3, seed=5)
    generate_dataset(default_catalog_dir(), root / "d", opts, workers=1)
    return root / "d"


def test_workers_measure_what_one_process_measures(synth: Path) -> None:
    assert label_visibility(synth, workers=2) == label_visibility(synth, workers=1)
    assert label_visibility(synth, 2, delta_e=12.0) == label_visibility(synth, 1, delta_e=12.0)


def test_a_stricter_delta_e_sees_fewer_pixels_and_the_recipe_says_which(synth: Path) -> None:
    at6 = label_visibility(synth)
    at12 = label_visibility(synth, delta_e=12.0)
    assert [(r["id"], r["label"]) for r in at6] == [(r["id"], r["label"]) for r in at12]
    assert all(b["visible_px"] <= a["visible_px"] for a, b in zip(at6, at12, strict=True))
    assert any(b["visible_px"] < a["visible_px"] for a, b in zip(at6, at12, strict=True))
    m, _ = visible_manifest(synth, synth.parent / "v12.jsonl", min_px=1, delta_e=12.0)
    assert m.header.recipe["visible_de"] == 12.0
    for r in m.records:  # the kept labels are the ones seen at ΔE >= 12
        for lab, px in r.meta.get("visible_px", {}).items():
            assert (lab in r.labels) == (px >= 1)
    with pytest.raises(DataError, match="delta_e must be above 0"):
        visible_manifest(synth, synth.parent / "v0.jsonl", delta_e=0.0)


def test_the_written_manifest_keeps_seen_labels_with_working_paths(synth: Path) -> None:
    source = Manifest.read(synth)
    out = synth.parent / "vis.jsonl"
    m, stats = visible_manifest(synth, out, min_px=1)
    assert Manifest.read(out).header.version == m.header.version
    assert m.header.recipe["command"] == "visible" and m.header.recipe["min_px"] == 1
    assert m.header.recipe["built_from"][0]["version"] == source.header.version
    assert len(m.records) == len(source.records) - len(stats.dropped)
    for r in m.records:
        assert (out.parent / r.image).is_file()
        assert all((out.parent / p).is_file() for p in r.masks.values())
        for lab, px in r.meta.get("visible_px", {}).items():
            assert (lab in r.labels) == (px >= 1)
    # A bend, a missing bead or a broken link changes the outline: always seen.
    kept = {r.id: r for r in m.records}
    shape = {"bent", "missing_component", "broken_link"}
    with_shape = [r for r in source.records if shape & set(r.labels)]
    assert with_shape and all(shape & set(r.labels) <= set(kept[r.id].labels) for r in with_shape)
    # Asking for more pixels than a photo has: every defect is unseen, every defective photo
    # shows a good-looking piece and leaves; the good photos stay, unchanged in labels.
    m_all, stats_all = visible_manifest(synth, synth.parent / "none.jsonl", min_px=10**7)
    visual = [r for r in source.records if set(r.labels) & set(VISUAL_DEFECTS)]
    only_visual = [r for r in visual if set(r.labels) <= set(VISUAL_DEFECTS)]
    assert len(stats_all.dropped) == len(only_visual) > 0
    assert all(not set(r.labels) & set(VISUAL_DEFECTS) for r in m_all.records)


def test_cli_writes_the_manifest_and_the_false_hold_floor(synth: Path) -> None:
    out = synth.parent / "cli.jsonl"
    result = runner.invoke(app, ["data", "visible", str(synth), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "labels unseen" in result.output and "must hold" in result.output
    assert Manifest.read(out).header.recipe["command"] == "visible"
    assert Manifest.read(out).header.recipe["visible_de"] == 6.0
    args = ["data", "visible", str(synth), "--out", str(out), "--min-delta-e", "12"]
    assert runner.invoke(app, args).exit_code == 0
    assert Manifest.read(out).header.recipe["visible_de"] == 12.0
    bad = runner.invoke(app, [*args[:-1], "0.1"])
    assert bad.exit_code == 2 and "min-delta-e" in bad.output


def test_cli_refuses_bad_places_and_foreign_data(synth: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "x.jsonl"
    result = runner.invoke(app, ["data", "visible", str(synth), "--out", str(elsewhere)])
    assert result.exit_code == 2 and "must lie inside" in result.output
    assert not elsewhere.exists()
    Manifest(header=Header(name="x"), records=[]).write(tmp_path / "f" / "manifest.jsonl")
    result = runner.invoke(
        app, ["data", "visible", str(tmp_path / "f"), "--out", str(tmp_path / "f" / "v.jsonl")]
    )
    assert result.exit_code == 2 and "not made by kito data synth" in result.output
    result = runner.invoke(
        app, ["data", "visible", str(tmp_path / "nope"), "--out", str(tmp_path / "v.jsonl")]
    )
    assert result.exit_code == 2 and "error:" in result.output
