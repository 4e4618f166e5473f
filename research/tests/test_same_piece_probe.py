"""research.same_piece_probe: the spec checks' measurements of each photo the gate passes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from qc_model.manifest import Header, Manifest, Record, sha256_file
from research.same_piece_probe import measurements

HOOP = "KQ-HOOP-BR-30"


def _hoops(px_per_mm: float, diameter: float) -> np.ndarray:
    from qc_model.mat import DEFAULT_MAT

    img = DEFAULT_MAT.render(px_per_mm)
    h, w = img.shape[:2]
    wire = max(2, round(2.5 * px_per_mm))
    r = round(diameter / 2 * px_per_mm - wire / 2)
    offset = round((diameter / 2 + 10) * px_per_mm)
    for cx in (w // 2 - offset, w // 2 + offset):
        cv2.circle(img, (cx, h // 2), r, (60, 150, 190), wire, lineType=cv2.LINE_AA)
    return np.asarray(cv2.GaussianBlur(img, (3, 3), 0), np.uint8)


def test_a_larger_piece_measures_larger(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    records = []
    for i, diameter in enumerate((29.0, 29.0, 31.5)):
        name = f"images/{i}.jpg"
        cv2.imwrite(str(tmp_path / name), _hoops(4.0, diameter))
        records.append(
            Record(id=str(i), image=name, sha256=sha256_file(tmp_path / name), width=1188,
                   height=840, design_id=HOOP, piece_id=f"p{diameter}", source="synthetic")
        )  # fmt: skip
    Manifest(header=Header(name="t"), records=records).write(tmp_path / "manifest.jsonl")
    found = measurements(tmp_path)[HOOP]
    assert [pc for pc, _ in found] == ["p29.0", "p29.0", "p31.5"]
    sizes = [f["size_outer_diameter"] for _, f in found]
    assert sizes[0] == pytest.approx(sizes[1], abs=0.2)
    assert sizes[2] - sizes[0] == pytest.approx(2.5, abs=0.8)
