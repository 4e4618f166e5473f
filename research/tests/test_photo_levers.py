"""research.photo_levers on a tiny grey set: features cached once, a variant trains and is
scored with and without the eight-view mean."""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from qc_model.manifest import Header, Manifest, Record
from research.photo_levers import main


def _tiny_set(root: Path) -> Path:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(18):
        label = "defective" if i % 2 else "good"
        img = np.full((64, 64), 120, np.uint8) + rng.integers(0, 20, (64, 64), np.uint8)
        if label == "defective":
            cv2.line(img, (5, 5 + i), (60, 50), 0, 3)
        name = f"p{i}.png"
        cv2.imwrite(str(root / name), img)
        sha = hashlib.sha256((root / name).read_bytes()).hexdigest()
        split = ("train", "train", "val", "test")[i % 4] if i >= 4 else ("val", "test")[i % 2]
        records.append(
            Record(id=name, image=name, sha256=sha, width=64, height=64, piece_id=name,
                   labels=[label], source="imported", split=split)
        )  # fmt: skip
    header = Header(name="t", task="single_label", classes=["defective", "good"])
    Manifest(header=header, records=records).write(root / "manifest.jsonl")
    return root / "manifest.jsonl"


def test_levers_run_and_score_val_and_test(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KITO_CACHE_DIR", str(tmp_path / "cache"))
    manifest = _tiny_set(tmp_path / "data")
    sets = ["--set", "preprocess.input_size=64", "--set", "epochs=2", "--set", "batch_size=4"]
    main(["--manifest", str(manifest), "--variants", "base,ls0", *sets])
    out = capsys.readouterr().out
    rows = [ast.literal_eval(line) for line in out.splitlines() if line.startswith("{")]
    assert len(rows) == 4  # two variants, two epochs
    last = rows[1]
    for key in ("val", "test", "val_tta", "test_tta", "ema_val", "ema_test"):
        assert 0.0 <= last[key] <= 1.0
    assert "test_tta" not in rows[0]
    # The features were cached once: the second variant read them back.
    assert len(list((tmp_path / "cache" / "features").rglob("*.pt"))) == 18
