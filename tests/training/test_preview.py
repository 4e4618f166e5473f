"""Tests of the contact sheet: written, sized as promised, masks outlined, imported sets work."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from kito.cli import app
from qc_model.errors import DataError
from qc_model.manifest import Header, Manifest, Record, sha256_file
from training.data_import import import_batch
from training.preview import CAPTION_H, GAP, HEADER_H, THUMB, contact_sheet, sample_records

LABELS = [[], [], ["scratch"], ["tarnish", "scratch"], ["bent"], []]


def _dataset(root: Path, n: int = 12) -> Path:
    """Photos of a grey 'hoop' on white; defects carry a mask of a filled disc at (60, 40)."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    records = []
    for i in range(n):
        labels = LABELS[i % len(LABELS)]
        img = np.full((120, 160, 3), 230, np.uint8)
        cv2.circle(img, (80, 60), 40, (90, 90, 90), 6)
        masks = {}
        for label in labels:
            mask = np.zeros((120, 160), np.uint8)
            cv2.circle(mask, (60, 40), 12, 255, -1)
            masks[label] = f"masks/{i}_{label}.png"
            cv2.imwrite(str(root / masks[label]), mask)
        image = f"images/{i}.png"
        cv2.imwrite(str(root / image), img)
        records.append(
            Record(
                id=f"r{i}",
                image=image,
                sha256=sha256_file(root / image),
                width=160,
                height=120,
                design_id="KQ-HOOP-BR-50",
                piece_id=f"p{i}",
                labels=labels,
                masks=masks,
                capture=["rotation", "motion_blur"][: i % 3],
                split="train",
                source="synthetic",
            )
        )
    Manifest(header=Header(name="tiny"), records=records).write(root / "manifest.jsonl")
    return root


def test_sheet_written_with_expected_size(tmp_path: Path) -> None:
    ds = _dataset(tmp_path / "ds")
    path = contact_sheet(ds, None, count=10)
    assert path == ds / "preview.png"
    sheet = cv2.imread(str(path))
    # 10 thumbnails: 8 columns, 2 rows.
    assert sheet.shape == (HEADER_H + 2 * (THUMB + CAPTION_H) + 3 * GAP, 8 * THUMB + 9 * GAP, 3)
    # Half of the ten are defective and come first: the first tile shows its mask in red, the
    # eighth (a good piece) has no red at all.
    tile = sheet[HEADER_H + GAP : HEADER_H + GAP + THUMB, GAP : GAP + THUMB].astype(int)
    b, g, r = tile[..., 0], tile[..., 1], tile[..., 2]
    assert ((r > 150) & (g < 120) & (b < 120)).sum() > 50
    good = sheet[HEADER_H + GAP : HEADER_H + GAP + THUMB, -GAP - THUMB : -GAP].astype(int)
    assert not ((good[..., 2] > 150) & (good[..., 1] < 120)).any()
    # Captions: the labels line is red under a defect, green ("good") under a good piece.
    y = HEADER_H + GAP + THUMB
    bad_cap = sheet[y : y + CAPTION_H, GAP : GAP + THUMB].astype(int)
    good_cap = sheet[y : y + CAPTION_H, -GAP - THUMB : -GAP].astype(int)
    assert ((bad_cap[..., 2] > 180) & (bad_cap[..., 1] < 110)).sum() > 20
    assert ((good_cap[..., 1] > 160) & (good_cap[..., 2] < 120)).sum() > 20
    assert not ((good_cap[..., 2] > 180) & (good_cap[..., 1] < 110)).any()


def test_sample_is_stratified_and_deterministic(tmp_path: Path) -> None:
    m = Manifest.read(_dataset(tmp_path / "ds", n=24))
    picked = sample_records(m, 6, seed=3)
    assert [r.id for r in picked] == [r.id for r in sample_records(m, 6, seed=3)]
    assert sum(1 for r in picked if not r.labels) == 3
    assert {r.labels[0] for r in picked if r.labels} >= {"bent", "tarnish"}
    assert len(sample_records(m, 100)) == 24


def test_sheet_of_imported_single_label_set(tmp_path: Path) -> None:
    for label in ("keep", "reject"):
        for i in range(2):
            (tmp_path / "src" / label).mkdir(parents=True, exist_ok=True)
            img = np.full((50, 40), 60 * i + (100 if label == "keep" else 0), np.uint8)
            cv2.imwrite(str(tmp_path / "src" / label / f"{i}.jpg"), img)
    import_batch(tmp_path / "src", tmp_path / "imp")
    out = contact_sheet(tmp_path / "imp" / "manifest.jsonl", tmp_path / "sheet.png", count=48)
    assert cv2.imread(str(out)).shape == (
        HEADER_H + THUMB + CAPTION_H + 2 * GAP,
        4 * THUMB + 5 * GAP,
        3,
    )


def test_missing_manifest_and_cli(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="count must be at least 1"):
        contact_sheet(tmp_path, None, count=0)
    result = CliRunner().invoke(app, ["data", "preview", str(tmp_path / "none")])
    assert result.exit_code == 2 and "cannot be read" in result.output
    ds = _dataset(tmp_path / "ds", n=3)
    ok = CliRunner().invoke(app, ["data", "preview", str(ds), "--out", str(tmp_path / "p.png")])
    assert ok.exit_code == 0 and (tmp_path / "p.png").is_file()
