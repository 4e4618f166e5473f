"""training.surface and packages with a surface branch: samples, fusion, attach, serving."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from tiny_package import build_tiny_package

from qc_model.catalog import default_catalog_dir
from qc_model.errors import DataError
from qc_model.inference import Inferencer, pool_max, read_image
from qc_model.manifest import Header, Manifest
from qc_model.package import SURFACE_FILE, PackageError, load_package, read_meta
from qc_model.preprocess import PreprocessConfig, crop_to_piece
from qc_model.surface import SurfaceConfig, surface_crop, surface_scale
from qc_model.taxonomy import VISUAL_DEFECTS
from training.metrics import average_precision
from training.surface import (
    PatchSampler,
    Sample,
    apply_fusion,
    attach,
    cell_targets,
    choose_fusion,
    design_offsets,
    fit_fusion,
    fused_probs,
    load_surface,
    make_sample,
    mine_hard_negatives,
    net_arch,
    train_surface,
    window,
)
from training.synth.generate import SynthOptions, generate_dataset

# -- pieces ---------------------------------------------------------------------------------------


def test_cell_targets_mark_every_cell_a_mask_pixel_falls_in() -> None:
    bits = np.zeros((24, 16), np.uint8)
    bits[3, 9] = 0b01  # class 0 in cell (0, 1)
    bits[17, 0] = 0b10  # class 1 in cell (2, 0)
    bits[8, 8] = 0b11  # both in cell (1, 1)
    t = cell_targets(bits, 2, 8)
    assert t.shape == (2, 3, 2)
    assert t[0].tolist() == [[0, 1], [0, 1], [0, 0]]
    assert t[1].tolist() == [[0, 0], [0, 1], [1, 0]]


def test_window_pads_with_zeros_past_the_edge() -> None:
    a = np.arange(16, dtype=np.uint8).reshape(4, 4)
    assert window(a, -1, 2, 3).tolist() == [[0, 0, 0], [2, 3, 0], [6, 7, 0]]


def _sample(h: int, w: int, defect_at: tuple[int, int] | None) -> Sample:
    bits = np.zeros((h, w), np.uint8)
    if defect_at:
        bits[defect_at] = 0b100
    labels = np.array([False, False, defect_at is not None])
    return Sample(np.full((h, w, 3), 128, np.uint8), bits, labels, "d")


def test_sampler_aims_half_the_patches_at_defects_and_keeps_targets_aligned() -> None:
    samples = [_sample(304, 200, (150, 100)), _sample(88, 56, None)]  # one smaller than a patch
    sampler = PatchSampler(samples, k=3, patch=64, seed=1)
    x, y = sampler.batch(200)
    assert x.shape == (200, 3, 64, 64) and y.shape == (200, 3, 8, 8)
    assert x.min() >= -1.0 and x.max() <= 1.0
    with_defect = y[:, 2].reshape(200, -1).max(axis=1)
    # About half the patches are aimed at the single defect pixel (the jitter keeps it inside).
    assert 0.35 < with_defect.mean() < 0.75
    assert y[:, :2].sum() == 0  # classes 0 and 1 are nowhere
    assert np.all(y[:, 2].reshape(200, -1).sum(axis=1) <= 1)  # one pixel, one cell
    with pytest.raises(DataError, match="multiple of 8"):
        PatchSampler(samples, k=3, patch=60, seed=1)


def _lit(h: int, w: int, spots: list[tuple[int, int, int, int]]) -> NDArray[np.uint8]:
    """A black (h, w) RGB crop with white rectangles (y0, x0, y1, x1)."""
    img = np.zeros((h, w, 3), np.uint8)
    for y0, x0, y1, x1 in spots:
        img[y0:y1, x0:x1] = 255
    return img


def test_negatives_can_be_aimed_at_the_piece_and_at_mined_cells() -> None:
    # A 400 x 400 crop, mostly paper; the piece is a 16 px square near one corner.
    piece = np.zeros((400, 400), bool)
    piece[340:356, 40:56] = True
    good = Sample(_lit(400, 400, [(340, 40, 356, 56)]), np.zeros((400, 400), np.uint8),
                  np.zeros(3, bool), "d", piece)  # fmt: skip
    anywhere = PatchSampler([good], k=3, patch=64, seed=2)
    hits = np.mean([anywhere.one()[0].any() for _ in range(200)])
    assert hits < 0.3  # random patches seldom reach a small piece
    on_piece = PatchSampler([good], k=3, patch=64, seed=2, piece_fraction=1.0)
    assert all(on_piece.one()[0].any() for _ in range(200))  # every one holds some of it
    # A mined centre far from the piece: with hard_fraction 1 every negative is aimed there.
    hard = PatchSampler([good], k=3, patch=64, seed=2, piece_fraction=1.0, hard_fraction=1.0)
    hard.set_hard(np.array([[0, 100, 300]]))
    assert not any(hard.one()[0].any() for _ in range(100))  # the piece is out of reach
    hard.set_hard(np.zeros((0, 3), np.int64))  # no pool yet: back to the piece
    assert all(hard.one()[0].any() for _ in range(50))
    with pytest.raises(DataError, match="hard_fraction"):
        PatchSampler([good], k=3, patch=64, seed=2, hard_fraction=1.5)


def test_mining_finds_the_confident_wrong_cells_near_the_piece_only() -> None:
    import torch

    # A "branch" that calls every bright 8 x 8 cell class 0 and class 1 (stride 8, k=2).
    net = torch.nn.Conv2d(3, 2, 8, stride=8)
    with torch.no_grad():
        net.weight.fill_(20.0 / (3 * 64))
        net.bias.fill_(-10.0)
    cfg = SurfaceConfig(px_per_mm=5.0, tile=32, piece_margin=8)
    # Bright spots: A on the piece with a class-0 mask on it, B on the piece with nothing,
    # C on the paper far from the piece (the service never counts it).
    img = _lit(96, 96, [(8, 8, 16, 16), (8, 40, 16, 48), (80, 80, 88, 88)])
    piece = np.zeros((96, 96), bool)
    piece[0:24, 0:56] = True
    bits = np.zeros((96, 96), np.uint8)
    bits[10, 10] = 0b01
    sample = Sample(img, bits, np.array([True, False]), "d", piece)
    rows, found = mine_hard_negatives(net, [sample], cfg, 2, 5, np.random.default_rng(0))
    centres = {(y, x) for _, y, x in rows.tolist()}
    assert (12, 44) in centres  # B, for both classes
    assert (84, 84) not in centres  # C: not a cell the service counts
    # A carries a class-0 mask, so it is no negative for class 0; for class 1 it is.
    assert rows.tolist().count([0, 12, 12]) == 1 and rows.tolist().count([0, 12, 44]) == 2
    assert found == {"photos": 1.0, "cells": 3.0}


def test_surface_scale_resamples_only_what_differs_and_caps_the_side() -> None:
    cfg = SurfaceConfig(px_per_mm=2.65, max_side=512)
    assert surface_scale(cfg, 2.8, 300) == 1.0  # within 15 %: left alone
    assert surface_scale(cfg, 5.3, 300) == pytest.approx(0.5)  # a finer phone photo
    assert surface_scale(cfg, None, 300) == 1.0  # no mat: as photographed
    assert surface_scale(cfg, 2.65, 1024) == pytest.approx(0.5)  # too big: capped
    assert surface_scale(SurfaceConfig(), 5.3, 300) == 1.0  # no trained scale


def test_surface_crop_is_rgb_padded_to_the_stride() -> None:
    img = np.zeros((100, 100, 3), np.uint8)
    img[:, :, 0] = 200  # blue in BGR
    rgb, f = surface_crop(img, (10, 10, 51, 51), SurfaceConfig(), None)
    assert f == 1.0 and rgb.shape == (48, 48, 3)
    assert rgb[0, 0].tolist() == [0, 0, 200] and rgb[47, 47].tolist() == [0, 0, 0]


def test_pool_max_keeps_the_peak() -> None:
    g = np.zeros((70, 40), np.float32)
    g[69, 39] = 1.0
    p = pool_max(g, 32)
    assert p.shape == (24, 20) and p.max() == 1.0 and p[23, 19] == 1.0
    assert pool_max(g[:8, :8], 32).shape == (8, 8)


def test_fit_fusion_learns_which_score_carries_the_evidence() -> None:
    rng = np.random.default_rng(0)
    y = rng.random(4000) < 0.3
    p_model = np.full(4000, 0.3)  # knows only the base rate
    z = np.where(y, 2.0, -2.0) + rng.normal(0, 1.0, 4000)
    f = fit_fusion(p_model, z, y)
    assert f.w_surface > 1.0
    fused = apply_fusion(p_model, z, f)
    assert fused[y].mean() > 0.7 and fused[~y].mean() < 0.2
    fusion, report = choose_fusion(p_model[:, None], z[:, None], y[:, None], ["x"], ["x"])
    assert set(fusion) == {"x"} and report["x"]["val_ap_fused"] > report["x"]["val_ap_package"]
    # A branch that knows nothing is not fused in, unless asked for.
    noise = rng.normal(0, 1, 4000)[:, None]
    perfect = np.where(y, 0.9, 0.1)[:, None]
    assert choose_fusion(perfect, noise, y[:, None], ["x"], ["x"])[0] == {}
    assert set(choose_fusion(perfect, noise, y[:, None], ["x"], ["x"], force=["x"])[0]) == {"x"}


def test_design_offsets_take_out_what_a_design_adds_to_the_branch_logit() -> None:
    rng = np.random.default_rng(2)
    n = 3000
    designs = rng.choice(["KQ-CHAIN-1", "KQ-STUD-1", "KQ-RING-1"], n)
    y = rng.random(n) < 0.2
    # The branch scores every chain link higher, defect or not: on chains it holds good photos.
    z = np.where(y, 1.5, -1.5) + rng.normal(0, 1.0, n) + 3.0 * (designs == "KQ-CHAIN-1")
    p_model = np.full(n, 0.2)
    offsets = design_offsets(z, ~y, list(designs), shrink=0.0)
    overall = z[~y].mean()
    for d in ("KQ-CHAIN-1", "KQ-STUD-1"):
        assert offsets[d] == pytest.approx(z[~y & (designs == d)].mean() - overall, abs=1e-6)
    assert offsets["KQ-CHAIN-1"] > 1.5 > 0 > offsets["KQ-STUD-1"]
    # Shrinking toward 0: as if `shrink` photos at the overall mean were added.
    m = ~y & (designs == "KQ-RING-1")
    shrunk = design_offsets(z, ~y, list(designs), shrink=float(m.sum()))
    assert shrunk["KQ-RING-1"] == pytest.approx(offsets["KQ-RING-1"] / 2, abs=1e-6)
    assert design_offsets(z, np.zeros(n, bool), list(designs)) == {}

    fusion, report = choose_fusion(
        p_model[:, None], z[:, None], y[:, None], ["x"], ["x"], designs=list(designs)
    )
    f = fusion["x"]
    assert set(f.design_offsets) == {"KQ-CHAIN-1", "KQ-STUD-1", "KQ-RING-1"}
    r = report["x"]
    assert r["val_ap_fused"] == r["val_ap_fused_design_offsets"] > r["val_ap_package"]
    with_d = fused_probs(p_model[:, None], z[:, None], ["x"], ["x"], fusion, list(designs))
    assert average_precision(with_d[:, 0], y) == pytest.approx(r["val_ap_fused"])
    # Without designs, no offsets are fitted (and none are applied).
    plain, plain_report = choose_fusion(p_model[:, None], z[:, None], y[:, None], ["x"], ["x"])
    assert plain["x"].design_offsets == {}
    assert "val_ap_fused_design_offsets" not in plain_report["x"]
    assert r["val_ap_fused_design_offsets"] > plain_report["x"]["val_ap_fused"] + 0.05
    # A design that adds nothing keeps the fusion without offsets.
    flat = np.where(y, 1.5, -1.5) + rng.normal(0, 1.0, n)
    kept, _ = choose_fusion(p_model[:, None], flat[:, None], y[:, None], ["x"], ["x"],
                            designs=list(designs))  # fmt: skip
    assert kept["x"].design_offsets == {}


# -- with rendered photos -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 photos of a cuff and a hoop (train: scratch, pitting, tarnish), and calib.jsonl: the
    same photos, all in split val."""
    root = tmp_path_factory.mktemp("surface") / "d"
    opts = SynthOptions(
        count=16, size=512, defect_rate=0.7, difficulty=0.3, seed=4,
        designs=("KQ-CUFF-BR-65", "KQ-HOOP-BR-30"),
    )  # fmt: skip
    m = generate_dataset(default_catalog_dir(), root, opts, workers=1)
    calib = [r.model_copy(update={"split": "val"}) for r in m.records]
    Manifest(header=Header(name="calib", classes=m.header.classes), records=calib).write(
        root / "calib.jsonl"
    )
    assert sum("scratch" in r.labels for r in calib) >= 2 and sum(not r.labels for r in calib) >= 4
    return root


@pytest.fixture(scope="module")
def trained(synth: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "surface"
    train_surface(synth / "manifest.jsonl", out, steps=3, batch=4, patch=64, workers=1)
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_package(tmp_path_factory.mktemp("pkg") / "tiny")


def test_a_sample_is_the_serving_crop_with_its_masks(synth: Path) -> None:
    m = Manifest.read(synth / "manifest.jsonl")
    rec = next(r for r in m.records if r.masks)
    cfg = SurfaceConfig()
    s = make_sample(rec, synth, list(VISUAL_DEFECTS), cfg)
    box = crop_to_piece(read_image(synth / rec.image), PreprocessConfig()).box
    side = box[2] - box[0]
    assert s.image.shape[:2] == (-(-side // 8) * 8,) * 2  # the crop as photographed, padded
    assert s.labels.tolist() == [c in rec.labels for c in VISUAL_DEFECTS]
    for k, c in enumerate(VISUAL_DEFECTS):
        assert bool(np.any(s.bits & (1 << k))) == (c in rec.masks and c in rec.labels)
    # A coarser scale: the crop and its masks shrink together.
    half = make_sample(rec, synth, list(VISUAL_DEFECTS), SurfaceConfig(px_per_mm=0.5))
    assert half.image.shape[0] < s.image.shape[0] * 0.6  # 512 px photos: ~1.3 px per mm
    assert (half.bits > 0).any() == (s.bits > 0).any()


def test_training_writes_a_loadable_checkpoint_with_val_scores(trained: Path) -> None:
    _, classes, cfg, info = load_surface(trained / "surface.pt")
    assert classes == [c for c in VISUAL_DEFECTS]
    assert cfg.px_per_mm is not None and 1.0 < cfg.px_per_mm < 4.0  # from the mat, 512 px photos
    assert info["timing"]["patches"] == 12
    report = json.loads((trained / "surface.json").read_text())
    assert report["classes"] == classes and "val" in report


def test_training_mines_hard_negatives_on_schedule(synth: Path, tmp_path: Path) -> None:
    info = train_surface(
        synth / "manifest.jsonl", tmp_path / "m", steps=5, batch=4, patch=64,
        mine_every=2, mine_photos=3,
    )  # fmt: skip
    assert [m["photos"] for m in info["mined"]] == [3.0, 3.0]  # before steps 2 and 4
    assert info["settings"]["hard_fraction"] == 0.5 and info["timing"]["mining_seconds"] > 0
    off = train_surface(
        synth / "manifest.jsonl", tmp_path / "o", steps=3, batch=4, patch=64, mine_every=0
    )
    assert off["mined"] == [] and off["timing"]["mining_seconds"] == 0


def test_both_branch_networks_train_export_and_serve(
    synth: Path, trained: Path, tiny: Path, tmp_path: Path
) -> None:
    import torch

    # The default network has the stride-16 stages; its cells are still 8 px, odd sides too
    # (the stride-16 features are cut back to the stride-8 grid).
    model, classes, _, info = load_surface(trained / "surface.pt")
    assert info["settings"]["arch"] == "s8+s16" and net_arch(model) == "s8+s16"
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 72, 88)).shape == (1, len(classes), 9, 11)
    # The stride-8 network alone: rebuilt as it was trained, exported, served.
    train_surface(synth / "manifest.jsonl", tmp_path / "r", steps=2, batch=4, patch=64, arch="s8")
    small, *_ = load_surface(tmp_path / "r" / "surface.pt")
    assert net_arch(small) == "s8" and not hasattr(small, "high")
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in model.parameters())
    out = tmp_path / "pkg"
    meta = attach(tiny, tmp_path / "r" / "surface.pt", synth / "calib.jsonl", out, fuse=["scratch"])
    assert meta.surface is not None and meta.surface.training["parity"]["max_abs_logits"] <= 1e-3
    photo = synth / Manifest.read(synth / "calib.jsonl").records[0].image
    assert "surface" in Inferencer(out).predict([photo])[0].timings_ms
    with pytest.raises(DataError, match="unknown branch architecture 'wide'"):
        train_surface(synth / "manifest.jsonl", tmp_path / "x", steps=1, arch="wide")
    assert not (tmp_path / "x").exists()


def test_training_refuses_data_without_masks_and_a_used_folder(
    synth: Path, trained: Path, tmp_path: Path
) -> None:
    m = Manifest.read(synth / "manifest.jsonl")
    bare = [r.model_copy(update={"masks": {}}) for r in m.records]
    Manifest(header=m.header, records=bare).write(synth / "bare.jsonl")
    with pytest.raises(DataError, match="needs masks"):
        train_surface(synth / "bare.jsonl", tmp_path / "x", steps=1)
    with pytest.raises(DataError, match="already exists"):
        train_surface(synth / "manifest.jsonl", trained, steps=1)
    with pytest.raises(DataError, match="mine_photos >= 1"):  # before any crop is made
        train_surface(synth / "manifest.jsonl", tmp_path / "n", steps=1, mine_photos=0)
    assert not (tmp_path / "n").exists()
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="not a readable checkpoint"):
        load_surface(tmp_path / "junk.pt")
    # 512 px photos are below the gate's 640 px: with --judged-only nothing is left to train on.
    with pytest.raises(DataError, match="passes none of the"):
        train_surface(synth / "manifest.jsonl", tmp_path / "j", steps=1, judged_only=True)


def test_training_judged_only_keeps_the_photos_the_gate_passes(
    synth: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import training.judged

    m = Manifest.read(synth / "manifest.jsonl")
    n_train, n_val = len(m.split("train")), len(m.split("val"))
    monkeypatch.setattr(
        training.judged, "gate_passed", lambda records, *a, **k: np.arange(len(records)) % 2 == 0
    )
    info = train_surface(synth / "manifest.jsonl", tmp_path / "j", steps=1, judged_only=True)
    assert info["judged_only"] and info["photos_in_split"] == {"train": n_train, "val": n_val}
    assert info["train_photos"] == (n_train + 1) // 2
    kept_val = m.split("val")[::2]
    for name, row in info.get("val", {}).items():
        assert row["positives"] == sum(name in r.labels for r in kept_val)


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
    import training.surface as surface_mod
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
    import training.surface as surface_mod
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


def test_int8_refuses_a_package_with_a_branch(
    synth: Path, trained: Path, tiny: Path, tmp_path: Path
) -> None:
    from training.quantize import quantize_package

    pkg = tmp_path / "with-branch"
    attach(tiny, trained / "surface.pt", synth / "calib.jsonl", pkg, fuse=["scratch"])
    with pytest.raises(DataError, match="has a surface branch; quantize the package"):
        quantize_package(pkg, synth / "manifest.jsonl", tmp_path / "int8")


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


def test_the_cli_trains_attaches_and_names_bad_input(
    synth: Path, tiny: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from kito.cli import app

    run = CliRunner()
    out = tmp_path / "cli-run"
    argv = ["surface", "train", "--manifest", str(synth / "manifest.jsonl"), "--out", str(out)]
    r = run.invoke(app, [*argv, "--steps", "2", "--batch", "2", "--patch", "64"])
    assert r.exit_code == 0, r.output
    assert "2 steps" in r.output and "val scratch" in r.output
    pkg = tmp_path / "cli-pkg"
    attach_argv = ["surface", "attach", "--package", str(tiny), "--calibration-manifest",
                   str(synth / "calib.jsonl")]  # fmt: skip
    r = run.invoke(app, [*attach_argv, "--surface", str(out / "surface.pt"), "--out", str(pkg),
                         "--fuse", "scratch"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "fused scratch" in r.output and read_meta(pkg).surface is not None
    r = run.invoke(app, [*attach_argv, "--surface", str(tmp_path / "nothing.pt"),
                         "--out", str(tmp_path / "x")])  # fmt: skip
    assert r.exit_code == 2 and "no such surface checkpoint" in r.output
    assert not (tmp_path / "x").exists()
    r = run.invoke(app, ["surface", "train", "--manifest", str(synth / "manifest.jsonl"),
                         "--out", str(tmp_path / "y"), "--arch", "wide"])  # fmt: skip
    assert r.exit_code == 2 and "choose one of s8, s8+s16" in r.output
    assert not (tmp_path / "y").exists()


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
    from training.judged import rethreshold

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
