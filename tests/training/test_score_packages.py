"""training.score_packages: packages scored side by side on named photo sets."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest
from tiny_package import build_tiny_package, mat_photo, tiny_classes

from qc_model.errors import DataError
from qc_model.manifest import Header, Manifest, Record, sha256_file
from training.score_packages import main, photo_set


def _photo_set(root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    records = []
    for i, (design, labels) in enumerate(
        [
            ("hoop", ["scratch"]),
            ("hoop", []),
            ("cuff", ["bent"]),
            ("cuff", []),
            ("cuff", ["scratch"]),
        ]
    ):
        img = root / "images" / f"p{i}.png"
        photo = mat_photo(2.0 + 0.3 * i)
        cv2.imwrite(str(img), photo)
        h, w = photo.shape[:2]
        records.append(
            Record(
                id=f"p{i}",
                image=f"images/p{i}.png",
                sha256=sha256_file(img),
                width=w,
                height=h,
                piece_id=f"piece{i}",
                design_id=design,
                labels=labels,
                source="synthetic",
                split="test" if i < 4 else "val",
            )
        )
    header = Header(name="scoring", classes=tiny_classes())
    Manifest(header=header, records=records).write(root / "manifest.jsonl")
    return root


def test_two_packages_on_two_sets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = build_tiny_package(tmp_path / "pkg-a", "tiny-1", seed=0)
    b = build_tiny_package(tmp_path / "pkg-b", "tiny-2", seed=1)
    data = _photo_set(tmp_path / "data")
    main([str(a), str(b), "--on", f"all={data}", "--on", f"test={data / 'manifest.jsonl'}:test"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 + 4  # header, rule, 2 packages x 2 sets
    rows = [line.split(" | ") for line in lines[2:]]
    assert [(r[0].lstrip("| "), r[1], r[2]) for r in rows] == [
        ("pkg-a", "all", "5"),
        ("pkg-a", "test", "4"),
        ("pkg-b", "all", "5"),
        ("pkg-b", "test", "4"),
    ]
    assert all("scratch=" in r[7] and "bent=" in r[8] for r in rows)


def test_per_class_tables_give_each_class_at_its_threshold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = build_tiny_package(tmp_path / "pkg-a", "tiny-1", seed=0)
    data = _photo_set(tmp_path / "data")
    main([str(a), "--on", f"all={data}", "--per-class"])
    out = capsys.readouterr().out
    assert "pkg-a on all (5 photos):" in out
    rows = [line for line in out.splitlines() if line.startswith("| scratch |")]
    cells = rows[0].split(" | ")
    assert cells[1] == "2" and cells[2] == "0.500"  # two scratched photos; the tiny threshold
    assert len(rows) == 1 and "| bent | 1 |" in out


def test_bad_sets_are_named(tmp_path: Path) -> None:
    for spec, why in [
        ("nameless", "expected NAME=PATH"),
        (f"x={tmp_path}", "no manifest"),
    ]:
        with pytest.raises(DataError, match=why):
            photo_set(spec)
    Manifest(header=Header(name="e"), records=[]).write(tmp_path / "manifest.jsonl")
    with pytest.raises(DataError, match="no photos in split 'test'"):
        photo_set(f"x={tmp_path}:test")
    with pytest.raises(SystemExit, match="not a model package"):
        main([str(tmp_path), "--on", f"x={tmp_path}"])
