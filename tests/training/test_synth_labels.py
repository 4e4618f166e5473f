"""Synthetic labels are true: defects really are in the pixels, spec defects really out of spec."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from qc_model.catalog import default_catalog_dir
from qc_model.color import delta_e_2000
from training.synth.designs import load_designs
from training.synth.photo import spec_labels
from training.synth.render import render_piece
from training.synth.sampling import applicable_defects, sample_item


@pytest.fixture(scope="module")
def designs():
    return {d.id: d for d in load_designs(default_catalog_dir())}


def _with_defects(item, labels):
    pieces = tuple(dataclasses.replace(p, defects=frozenset(labels)) for p in item.pieces)
    return dataclasses.replace(item, pieces=pieces)


def _bead_cores(layer) -> int:
    """Beads counted from pixels: connected blobs of the component map, each shrunk to its core
    so that touching beads do not merge."""
    count = 0
    for cid in np.unique(layer.comp):
        if cid < 0:
            continue
        blob = (layer.comp == cid).astype(np.uint8)
        core = cv2.erode(blob, np.ones((3, 3), np.uint8))
        n, _ = cv2.connectedComponents(core)
        count += min(1, n - 1)
    return count


@pytest.mark.parametrize(
    "design_id", ["KQ-BBR-MAASAI-190", "KQ-BBR-BONE-180", "KQ-RING-AL-STONE-20", "KQ-STUD-RED-10"]
)
def test_missing_component_is_really_absent(designs, design_id):
    d = designs[design_id]
    item = sample_item(d, np.random.default_rng(5), 0.0)
    good = render_piece(item.pieces[0], 4.0)
    bad = render_piece(_with_defects(item, {"missing_component"}).pieces[0], 4.0)
    assert d.components is not None
    assert _bead_cores(good) == d.components.count == good.count
    assert _bead_cores(bad) == d.components.count - 1 == bad.count
    assert bad.masks["missing_component"].any()
    # The mask marks empty space where the bead was: no component pixel inside it.
    assert not (bad.comp[bad.masks["missing_component"]] >= 0).mean() > 0.2


@pytest.mark.parametrize("design_id", sorted(d.id for d in load_designs(default_catalog_dir())))
def test_each_design_renders_each_defect_with_a_mask(designs, design_id):
    d = designs[design_id]
    item = sample_item(d, np.random.default_rng(1), 0.0)
    good = render_piece(item.pieces[0], 3.0)
    assert good.alpha.max() > 0.99 and not good.masks
    visual = [x for x in applicable_defects(d) if x not in {"mismatched_pair", "wrong_size"}]
    visual = [x for x in visual if x != "wrong_finish_colour"]
    for label in visual:
        layer = render_piece(_with_defects(item, {label}).pieces[0], 3.0)
        assert layer.masks.get(label) is not None and layer.masks[label].any(), label
        # A surface defect changes the pixels it claims.
        if label in {"scratch", "tarnish", "pitting", "finish_flaw"}:
            m = layer.masks[label]
            diff = np.abs(layer.rgb - good.rgb).sum(-1)[m]
            assert diff.mean() > 6, (label, diff.mean())


def test_size_and_colour_labels_match_the_truth(designs):
    rng = np.random.default_rng(0)
    seen = {"good": 0, "wrong_size": 0, "wrong_finish_colour": 0}
    for _ in range(4):
        for d in designs.values():
            item = sample_item(d, rng, 0.5)
            dims = [render_piece(p, 1.0).dims for p in item.pieces]
            got = spec_labels(item, dims)
            for p, dd in zip(item.pieces, dims, strict=True):
                for x in d.dimensions:
                    off = abs(dd[x.measure] - x.nominal_mm) / x.tolerance_mm
                    if "wrong_size" in item.intended:
                        assert off > 1.1, (d.id, x.measure, off)
                    elif not item.intended & {"bent", "broken_link", "mismatched_pair"}:
                        assert off < 0.9, (d.id, x.measure, off)
                de = float(delta_e_2000(p.lab, d.finish.lab)) / d.finish.delta_e_tolerance
                if "wrong_finish_colour" in item.intended:
                    assert de > 1.3
                    seen["wrong_finish_colour"] += 1
                elif "mismatched_pair" not in item.intended:
                    assert de < 0.6
            if "wrong_size" in item.intended:
                assert "wrong_size" in got
                seen["wrong_size"] += 1
            if not item.intended:
                assert got == {}, (d.id, got)
                seen["good"] += 1
    assert all(v > 0 for v in seen.values()), seen
