"""training.surface.attach_branch (and .onnx_export): a branch put into a package, carried
to another, refused when damaged."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from qc_model.errors import DataError
from qc_model.inference import Inferencer
from qc_model.manifest import Manifest
from qc_model.package import SURFACE_FILE, PackageError, load_package, read_meta
from training.surface import attach


def test_attach_serves_fused_scores_and_finer_heatmaps(
    synth: Path, trained: Path, tiny: Path, tmp_path: Path
) -> None:
    out = tmp_path / "tiny-surface"
    meta = attach(tiny, trained / "surface.pt", synth / "calib.jsonl", out, fuse=["scratch"])
    assert meta.surface is not None and list(meta.surface.fusion) == ["scratch"]
    assert meta.surface.training["parity"]["max_abs_logits"] <= 1e-3
    assert (out / SURFACE_FILE).is_file() and not list(tmp_path.glob(".tiny-surface.tmp-*"))
    photos = [synth / r.image for r in Manifest.read(synth / "calib.jsonl").records[:3]]
    plain, fused = Inferencer(tiny).predict(photos), Inferencer(out).predict(photos)
    for a, b in zip(plain, fused, strict=True):
        assert a.probs["tarnish"] == b.probs["tarnish"]  # not fused: untouched
        assert a.probs["scratch"] != b.probs["scratch"]
        assert b.heatmap("scratch").shape != a.heatmap("scratch").shape  # the branch's cells
        assert b.heatmap("scratch").max() <= 1.0 and "surface" in b.timings_ms
    # Thresholds were chosen again on val; the rest of the package is the original's.
    assert meta.classes == read_meta(tiny).classes and meta.metrics["val"]["photos"] == 16

    # A package with a branch gives it to another package: no torch checkpoint needed.
    again = attach(tiny, out, synth / "calib.jsonl", tmp_path / "carried", fuse=["scratch"])
    assert again.surface is not None
    assert again.surface.onnx_sha256 == meta.surface.onnx_sha256
    assert not again.requires_vnni
    # The version names the branch and the photos its fusion and thresholds were fitted on:
    # the same branch fitted on other photos is another package, under the same folder name.
    calib = Manifest.read(synth / "calib.jsonl")
    fewer = Manifest(header=calib.header, records=calib.records[:-1])
    fewer = fewer.write(synth / "calib-fewer.jsonl")
    other = attach(
        tiny, out, synth / "calib-fewer.jsonl", tmp_path / "o" / out.name, fuse=["scratch"]
    )
    assert meta.version == f"{out.name}-{meta.surface.onnx_sha256[:8]}-{calib.header.version[:8]}"
    assert other.version == f"{out.name}-{meta.surface.onnx_sha256[:8]}-{fewer.header.version[:8]}"
    assert other.version != meta.version
    # Its graph is made for its 64 px tiles: padding folded in, height and width fixed, so it
    # is not carried over to be scored whole.
    import onnx

    from training.surface import graph_tile

    assert meta.surface.config.tile == 64 and graph_tile(out / SURFACE_FILE) == 64
    assert "Pad" not in {n.op_type for n in onnx.load(str(out / SURFACE_FILE)).graph.node}
    with pytest.raises(DataError, match="takes only 64 px tiles"):
        attach(tiny, out, synth / "calib.jsonl", tmp_path / "whole", tile=0)
    assert not (tmp_path / "whole").exists()
    whole = attach(
        tiny,
        trained / "surface.pt",
        synth / "calib.jsonl",
        tmp_path / "w",
        fuse=["scratch"],
        tile=0,
    )
    assert whole.surface is not None and whole.surface.config.tile is None
    assert graph_tile(tmp_path / "w" / SURFACE_FILE) is None
    assert Inferencer(tmp_path / "w").predict(photos[:1])[0].probs


def test_attach_judged_only_fits_on_the_photos_the_gate_passes(
    synth: Path, trained: Path, tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import training.judged

    calib = synth / "calib.jsonl"
    val = Manifest.read(calib).records
    # 512 px photos: the gate wants a 640 px long side, so it passes none of them.
    with pytest.raises(DataError, match="passes none of the 16 val photos"):
        attach(tiny, trained / "surface.pt", calib, tmp_path / "none", judged_only=True)
    assert not (tmp_path / "none").exists()

    keep = np.array([i % 3 != 0 for i in range(len(val))])  # the gate stands in: 10 of 16
    monkeypatch.setattr(training.judged, "gate_passed", lambda records, *a, **k: keep)
    meta = attach(
        tiny, trained / "surface.pt", calib, tmp_path / "j", fuse=["scratch"], judged_only=True
    )
    v = meta.metrics["val"]
    assert v["judged_only"] and v["photos"] == 10 and v["photos_in_split"] == 16
    assert v["any_defect"]["n"] == 10
    everything = attach(tiny, trained / "surface.pt", calib, tmp_path / "all", fuse=["scratch"])
    assert everything.metrics["val"]["photos"] == 16
    assert everything.surface is not None and meta.surface is not None
    assert everything.surface.fusion["scratch"] != meta.surface.fusion["scratch"]

    # kito retrain fits the challenger's branch as the champion's was fitted.
    import training.surface.attach_branch as surface_mod
    from training.retrain import _carry_surface

    real = surface_mod.choose_fusion
    monkeypatch.setattr(
        surface_mod, "choose_fusion", lambda *a, force=None, **k: real(*a, force=["scratch"], **k)
    )
    plain = tmp_path / ".plain"
    shutil.copytree(tiny, plain)
    plan: Any = SimpleNamespace(champion=tmp_path / "j", holdout_root=None)
    _carry_surface(plan, plain, tmp_path / "challenger", calib, echo=lambda s: None)
    carried = read_meta(tmp_path / "challenger").metrics["val"]
    assert carried["judged_only"] and carried["photos"] == 10


def test_attach_refusals(synth: Path, trained: Path, tiny: Path, tmp_path: Path) -> None:
    calib = synth / "calib.jsonl"
    with pytest.raises(DataError, match="has no surface branch"):
        attach(tiny, tiny, calib, tmp_path / "a")
    with pytest.raises(DataError, match="both score only"):
        attach(tiny, trained / "surface.pt", calib, tmp_path / "b", fuse=["pitting"])
    with pytest.raises(DataError, match="already exists"):
        attach(tiny, trained / "surface.pt", calib, tiny)
    with pytest.raises(DataError, match=r"--tile 20: .* a multiple of the branch's 8 px cells"):
        attach(tiny, trained / "surface.pt", calib, tmp_path / "c", tile=20)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert not (tmp_path / "c").exists()
    assert not list(tmp_path.glob(".*tmp-*"))


def test_a_damaged_branch_is_refused_on_load(
    synth: Path, trained: Path, tiny: Path, tmp_path: Path
) -> None:
    good = tmp_path / "good"
    attach(tiny, trained / "surface.pt", synth / "calib.jsonl", good, fuse=["scratch"])
    corrupt = tmp_path / "corrupt"
    shutil.copytree(good, corrupt)
    with (corrupt / SURFACE_FILE).open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(PackageError, match="checksum"):
        load_package(corrupt)
    missing = tmp_path / "missing"
    shutil.copytree(good, missing)
    (missing / SURFACE_FILE).unlink()
    with pytest.raises(PackageError, match=r"surface\.onnx is missing"):
        load_package(missing)
    # A branch graph from before cell logits (its cells were probabilities, named "cells").
    import onnx

    from qc_model.manifest import sha256_file

    old = tmp_path / "old"
    shutil.copytree(good, old)
    graph = onnx.load(str(old / SURFACE_FILE))
    for node in graph.graph.node:
        node.input[:] = ["cells" if o == "cell_logits" else o for o in node.input]
        node.output[:] = ["cells" if o == "cell_logits" else o for o in node.output]
    for out in graph.graph.output:
        if out.name == "cell_logits":
            out.name = "cells"
    onnx.save(graph, str(old / SURFACE_FILE))
    from training.export import finish_package

    meta = read_meta(old)
    assert meta.surface is not None
    branch = meta.surface.model_copy(update={"onnx_sha256": sha256_file(old / SURFACE_FILE)})
    finish_package(old, meta.model_copy(update={"surface": branch}))
    with pytest.raises(PackageError, match=r"got cells, logits .*must be attached again"):
        load_package(old)
    # A graph made for 64 px tiles, in a package whose branch says it is scored whole.
    whole = tmp_path / "whole"
    shutil.copytree(good, whole)
    meta = read_meta(whole)
    assert meta.surface is not None and meta.surface.config.tile == 64
    cfg = meta.surface.config.model_copy(update={"tile": None})
    finish_package(
        whole, meta.model_copy(update={"surface": meta.surface.model_copy(update={"config": cfg})})
    )
    with pytest.raises(PackageError, match=r"both the branch's tile size \(None\)"):
        load_package(whole)


def test_retrain_carries_the_champions_branch_or_leaves_it_out(
    synth: Path, trained: Path, tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import training.surface.attach_branch as surface_mod
    from training.retrain import _carry_surface

    calib = synth / "calib.jsonl"
    champion = tmp_path / "champion"
    attach(tiny, trained / "surface.pt", calib, champion, fuse=["scratch"])
    plan: Any = SimpleNamespace(champion=champion, holdout_root=None)
    real = surface_mod.choose_fusion

    def forced(*args: Any, force: Any = None, **kwargs: Any) -> Any:
        return real(*args, force=["scratch"], **kwargs)

    monkeypatch.setattr(surface_mod, "choose_fusion", forced)
    plain = tmp_path / ".plain-1"
    shutil.copytree(tiny, plain)
    note = _carry_surface(plan, plain, tmp_path / "challenger", calib, echo=lambda s: None)
    meta = read_meta(tmp_path / "challenger")
    assert note.startswith("surface branch carried over") and meta.surface is not None
    assert meta.name == "tiny" and not plain.exists()

    # On a validation split where the branch helps no class, the challenger goes without it.
    monkeypatch.setattr(surface_mod, "choose_fusion", lambda *a, **k: ({}, {}))
    plain = tmp_path / ".plain-2"
    shutil.copytree(tiny, plain)
    note = _carry_surface(plan, plain, tmp_path / "challenger-2", calib, echo=lambda s: None)
    assert note.startswith("surface branch left out") and "improves no class" in note
    assert read_meta(tmp_path / "challenger-2").surface is None and not plain.exists()


def test_a_branch_carried_from_an_8_bit_package_keeps_needing_vnni(
    synth: Path, trained: Path, tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    import qc_model.package as package_module

    monkeypatch.setattr(package_module, "has_vnni", lambda: True)
    out = tmp_path / "with-branch"
    attach(tiny, trained / "surface.pt", synth / "calib.jsonl", out, fuse=["scratch"])
    # Its branch as an 8-bit INT8 package would record it (only package.json is read here).
    source = tmp_path / "int8-like"
    shutil.copytree(out, source)
    meta = json.loads((source / "package.json").read_text())
    (source / "package.json").write_text(json.dumps({**meta, "requires_vnni": True}))
    carried = attach(tiny, source, synth / "calib.jsonl", tmp_path / "carried", fuse=["scratch"])
    assert carried.requires_vnni and load_package(tmp_path / "carried").meta.requires_vnni
