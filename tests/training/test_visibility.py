"""training.visibility: twin renders measure what a photo shows of each labelled defect."""

from __future__ import annotations

from pathlib import Path

import pytest

from qc_model.catalog import default_catalog_dir
from qc_model.errors import DataError
from qc_model.manifest import Header, Manifest
from qc_model.taxonomy import VISUAL_DEFECTS
from training.synth.generate import SynthOptions, generate_dataset
from training.visibility import label_visibility


def test_every_visual_label_gets_its_visibility(tmp_path: Path) -> None:
    opts = SynthOptions(count=12, size=384, defect_rate=1.0, difficulty=0.3, seed=5)
    m = generate_dataset(default_catalog_dir(), tmp_path / "d", opts, workers=1)
    rows = label_visibility(tmp_path / "d")
    expected = {(r.id, lab) for r in m.records for lab in r.labels if lab in VISUAL_DEFECTS}
    assert {(row["id"], row["label"]) for row in rows} == expected and expected
    # The twin differs from the photo only through the defect: never more pixels than the
    # photo has, and a defect that changes a piece's outline is plainly visible.
    assert all(0 <= row["visible_px"] <= 384 * 288 for row in rows)
    shape = [row for row in rows if row["label"] in ("bent", "broken_link", "missing_component")]
    assert all(row["visible_px"] > 20 for row in shape)


def test_data_not_made_by_the_renderer_is_refused(tmp_path: Path) -> None:
    Manifest(header=Header(name="x"), records=[]).write(tmp_path / "manifest.jsonl")
    with pytest.raises(DataError, match="not made by kito data synth"):
        label_visibility(tmp_path)
