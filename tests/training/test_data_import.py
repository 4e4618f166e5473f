"""Tests of `kito data import`: ImageFolder and CSV batches, corrupt files, image kinds, errors."""

from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageFile
from typer.testing import CliRunner

from kito.cli import app
from qc_model.errors import DataError
from qc_model.manifest import Manifest
from training.data_import import import_batch
from training.image_integrity import BadImage, _jpeg_has_end_marker, check_image


def _jpeg(seed: int, size: tuple[int, int] = (24, 32)) -> bytes:
    img = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return buf.tobytes()


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _folder(root: Path, labels: dict[str, int], start: int = 0) -> Path:
    seed = start
    for label, n in labels.items():
        for i in range(n):
            _write(root / label / f"IMG_{i}.jpg", _jpeg(seed))
            seed += 1
    return root


def test_imagefolder_with_taxonomy_labels_is_multilabel(tmp_path: Path) -> None:
    src = _folder(tmp_path / "src", {"good": 3, "scratch": 2, "Broken link": 2})
    result = import_batch(src, tmp_path / "out", seed=1)
    m = Manifest.read(tmp_path / "out")
    assert m == result.manifest
    assert m.header.task == "multilabel" and m.header.recipe["source_kind"] == "imagefolder"
    assert m.class_counts() == {"good": 3, "scratch": 2, "broken_link": 2}
    assert all(r.source == "imported" and r.split in {"train", "val", "test"} for r in m.records)
    for r in m.records:
        # Content-addressed: the stored name is the hash, never the original file name.
        assert r.image == f"images/{r.sha256}.jpg" and "IMG" not in r.image
        assert (tmp_path / "out" / r.image).read_bytes() == (src / r.meta["original"]).read_bytes()
        assert (r.width, r.height) == (32, 24) and r.piece_id == r.sha256
    assert json.loads((tmp_path / "out" / "import_report.json").read_text())["imported"] == 7


def test_imagefolder_with_other_names_is_single_label(tmp_path: Path) -> None:
    src = _folder(tmp_path / "src", {"ok": 2, "reject": 3})
    m = import_batch(src, tmp_path / "out").manifest
    # "ok" is a common name for "no defect": stored as the class good, its spelling kept.
    assert (m.header.task, m.header.classes) == ("single_label", ["good", "reject"])
    assert m.class_counts() == {"good": 2, "reject": 3}
    assert m.header.good_label == "ok"


def test_csv_multilabel_with_ids(tmp_path: Path) -> None:
    for i in range(4):
        _write(tmp_path / "photos" / f"{i}.jpg", _jpeg(i))
    (tmp_path / "batch.csv").write_text(
        "path,label,design,piece_id,artisan_id\n"
        "photos/0.jpg,scratch;tarnish,KQ-HOOP-BR-30,P1,A1\n"
        "photos/1.jpg,good,KQ-HOOP-BR-30,P1,A1\n"
        "photos/2.jpg,,KQ-STUD-BR-12,P2,A2\n"
        "photos\\3.jpg,bent | wrong_size,KQ-CUFF-BR-65,P3,\n",
        encoding="utf-8",
    )
    m = import_batch(tmp_path / "batch.csv", tmp_path / "out").manifest
    by_name = {r.meta["original"]: r for r in m.records}
    assert m.header.task == "multilabel"
    assert by_name["photos/0.jpg"].labels == ["scratch", "tarnish"]
    assert by_name["photos/1.jpg"].labels == [] and by_name["photos/2.jpg"].labels == []
    assert by_name["photos/3.jpg"].labels == ["bent", "wrong_size"]
    assert by_name["photos/0.jpg"].design_id == "KQ-HOOP-BR-30"
    assert by_name["photos/3.jpg"].artisan_id is None
    # Two photos of piece P1 share a split.
    assert by_name["photos/0.jpg"].split == by_name["photos/1.jpg"].split


def test_csv_single_label_and_explicit_task(tmp_path: Path) -> None:
    for i in range(3):
        _write(tmp_path / f"{i}.png", cv2.imencode(".png", np.full((8, 8, 3), i * 50, np.uint8))[1])
    (tmp_path / "b.csv").write_text("path,label\n0.png,pass\n1.png,fail\n2.png,\n")
    m = import_batch(tmp_path / "b.csv", tmp_path / "out").manifest
    assert (m.header.task, m.header.classes) == ("single_label", ["fail", "good"])
    assert m.header.good_label == "pass" and m.class_counts() == {"fail": 1, "good": 2}
    assert all(r.image.endswith(".png") for r in m.records)
    with pytest.raises(DataError, match="not in the defect taxonomy: fail "):
        import_batch(tmp_path / "b.csv", tmp_path / "out2", task="multilabel")


def test_corrupt_files_are_reported_and_skipped(tmp_path: Path) -> None:
    src = _folder(tmp_path / "src", {"good": 2, "scratch": 2})
    whole = _jpeg(99, (64, 64))
    _write(src / "scratch" / "truncated.jpg", whole[: len(whole) // 2])
    _write(src / "good" / "zero.jpg", b"")
    _write(src / "good" / "notes.jpg", b"this is a text file, not a photo\n")
    _write(src / "scratch" / "noise.png", np.random.default_rng(0).bytes(400))
    _write(src / "scratch" / "copy.jpg", (src / "scratch" / "IMG_0.jpg").read_bytes())
    _write(src / "good" / "iphone.heic", b"\x00\x00\x00\x18ftypheic" + bytes(40))
    result = import_batch(src, tmp_path / "out")
    assert len(result.manifest.records) == 4
    reasons = {s.file: s.reason for s in result.skipped}
    assert reasons == {
        "scratch/truncated.jpg": "truncated",
        "good/zero.jpg": "empty",
        "good/notes.jpg": "not_an_image",
        "scratch/noise.png": "not_an_image",
        "scratch/copy.jpg": "duplicate",
        "good/iphone.heic": "unsupported_format",
    }
    report = json.loads((tmp_path / "out" / "import_report.json").read_text())
    assert {s["file"] for s in report["skipped"]} == set(reasons)
    text = result.summary()
    assert "imported 4 photos" in text and "skipped 6 files" in text
    assert "  not_an_image: 2" in text and "  scratch: 2" in text
    assert len(list((tmp_path / "out" / "images").iterdir())) == 4


def test_identical_photos_with_different_labels_are_both_dropped(tmp_path: Path) -> None:
    src = _folder(tmp_path / "src", {"good": 2, "bent": 1})
    _write(src / "pitting" / "same.jpg", (src / "bent" / "IMG_0.jpg").read_bytes())
    result = import_batch(src, tmp_path / "out")
    assert result.manifest.class_counts() == {"good": 2}
    assert sorted(s.reason for s in result.skipped) == ["conflicting_duplicate"] * 2


def test_truncated_jpeg_detected_by_end_marker() -> None:
    data = _jpeg(5, (48, 48))
    assert _jpeg_has_end_marker(data)
    assert not _jpeg_has_end_marker(data[:-2])
    # The end marker of an embedded EXIF thumbnail must not count for the main image.
    buf = io.BytesIO()
    img = Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    thumb = io.BytesIO()
    img.resize((16, 16)).save(thumb, "JPEG")
    exif = Image.Exif()
    exif[0x0112] = 6
    img.save(buf, "JPEG", exif=exif.tobytes() + thumb.getvalue(), progressive=True)
    full = buf.getvalue()
    assert _jpeg_has_end_marker(full) and check_image(full).exif_orientation == 6
    assert not _jpeg_has_end_marker(full[: len(full) - 40])
    with pytest.raises(BadImage, match="truncated"):
        check_image(full[: len(full) - 40])


def test_truncation_caught_even_when_pillow_tolerates_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # Some libraries switch this global on; the end-marker walk still catches the cut file.
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    data = _jpeg(8, (64, 64))
    with pytest.raises(BadImage, match="end-of-image marker"):
        check_image(data[: len(data) * 2 // 3])


def test_grayscale_16bit_palette_alpha_accepted(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    rgb = Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8))
    kinds = {
        "gray.png": cv2.imencode(".png", rng.integers(0, 256, (20, 30), dtype=np.uint8))[1],
        "deep.png": cv2.imencode(".png", rng.integers(0, 65536, (20, 30), dtype=np.uint16))[1],
    }
    for name, mode in [("palette.png", "P"), ("alpha.png", "RGBA"), ("gray.jpg", "L")]:
        buf = io.BytesIO()
        rgb.convert(mode).save(buf, "JPEG" if name.endswith(".jpg") else "PNG")
        kinds[name] = buf.getvalue()
    for name, data in kinds.items():
        _write(tmp_path / "src" / "good" / name, bytes(data))
    result = import_batch(tmp_path / "src", tmp_path / "out")
    modes = {r.meta["original"]: r.meta["mode"] for r in result.manifest.records}
    assert modes == {
        "good/gray.png": "L",
        "good/deep.png": "I;16",
        "good/palette.png": "P",
        "good/alpha.png": "RGBA",
        "good/gray.jpg": "L",
    }
    assert all((r.width, r.height) == (30, 20) for r in result.manifest.records)
    assert result.skipped == []


@pytest.mark.parametrize(
    ("csv_text", "message"),
    [
        ("file,label\na.jpg,good\n", "missing required column\\(s\\) path"),
        ("path,label,colour\na.jpg,good,red\n", "unknown column\\(s\\) colour"),
        ("path,label\n../outside.jpg,good\n", "points outside the CSV's folder"),
        ("path,label\n/etc/passwd,good\n", "points outside the CSV's folder"),
        ("path,label\nmissing.jpg,good\n", "no importable images"),
        ("path,label\na.jpg,scratch;good\n", "'good' together with defects"),
        ("path,label\na.jpg,scratch;cat\n", "single-label \\(labels not in the taxonomy: cat\\)"),
    ],
)
def test_csv_errors(tmp_path: Path, csv_text: str, message: str) -> None:
    (tmp_path / "batch").mkdir()
    _write(tmp_path / "batch" / "a.jpg", _jpeg(0))
    _write(tmp_path / "outside.jpg", _jpeg(1))
    (tmp_path / "batch" / "b.csv").write_text(csv_text)
    with pytest.raises(DataError, match=message):
        import_batch(tmp_path / "batch" / "b.csv", tmp_path / "out")


def test_other_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="import source not found"):
        import_batch(tmp_path / "nope", tmp_path / "out")
    src = _folder(tmp_path / "src", {"good": 1})
    with pytest.raises(DataError, match="unknown task 'binary'"):
        import_batch(src, tmp_path / "out", task="binary")
    with pytest.raises(DataError, match="not in the defect taxonomy: dirty"):
        import_batch(_folder(tmp_path / "src2", {"dirty": 1}), tmp_path / "o2", task="multilabel")
    _write(tmp_path / "empty" / "good" / "x.jpg", b"")
    with pytest.raises(DataError, match="no importable images"):
        import_batch(tmp_path / "empty", tmp_path / "o3")
    assert json.loads((tmp_path / "o3" / "import_report.json").read_text())["skipped_count"] == 1
    import_batch(src, tmp_path / "o4")
    with pytest.raises(DataError, match="not empty"):
        import_batch(src, tmp_path / "o4")


def test_cli_prints_counts_and_exits_2_on_bad_input(tmp_path: Path) -> None:
    src = _folder(tmp_path / "src", {"good": 2, "tarnish": 1})
    _write(src / "good" / "zero.jpg", b"")
    runner = CliRunner()
    ok = runner.invoke(app, ["data", "import", str(src), "--out", str(tmp_path / "out")])
    assert ok.exit_code == 0, ok.output
    assert "imported 3 photos" in ok.output and "empty: 1" in ok.output
    bad = runner.invoke(
        app, ["data", "import", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]
    )
    assert bad.exit_code == 2
    assert "import source not found" in bad.output and "Traceback" not in bad.output
    stats = runner.invoke(app, ["data", "stats", str(tmp_path / "out")], env={"COLUMNS": "120"})
    assert stats.exit_code == 0, stats.output
    assert "tarnish" in stats.output and "photos" in stats.output


@pytest.mark.parametrize("name", ["Functional", "NORMAL", "no-defect", "Pass", "good"])
def test_common_good_names_are_recognised_in_any_case(tmp_path: Path, name: str) -> None:
    src = _folder(tmp_path / "src", {name: 2, "defective": 3})
    m = import_batch(src, tmp_path / "out").manifest
    assert m.header.classes == ["defective", "good"] and m.class_counts()["good"] == 2
    assert m.header.good_label == name
    assert Manifest.read(tmp_path / "out") == m  # the header field survives a round trip


def test_good_label_option_names_the_good_class(tmp_path: Path) -> None:
    src = _folder(tmp_path / "src", {"mono_ok_cells": 2, "cracked": 3})
    m = import_batch(src, tmp_path / "out", good_label="Mono OK cells").manifest
    assert m.header.classes == ["cracked", "good"] and m.header.good_label == "mono_ok_cells"
    assert m.header.recipe["good_label"] == "Mono OK cells"
    with pytest.raises(DataError, match="--good-label 'fine': no photo carries that label"):
        import_batch(src, tmp_path / "out2", good_label="fine")


def test_two_good_looking_labels_need_the_option(tmp_path: Path) -> None:
    src = _folder(tmp_path / "src", {"ok": 2, "normal": 2, "bad": 2})
    with pytest.raises(DataError, match=r"several labels could mean 'no defect'.*--good-label"):
        import_batch(src, tmp_path / "out")
    m = import_batch(src, tmp_path / "out2", good_label="normal").manifest
    assert m.header.classes == ["bad", "good", "ok"] and m.header.good_label == "normal"


def test_without_a_good_label_the_summary_warns(tmp_path: Path) -> None:
    src = _folder(tmp_path / "src", {"crack": 2, "chip": 2})
    result = import_batch(src, tmp_path / "out")
    assert result.manifest.header.good_label is None
    assert "warning: no label means 'no defect'" in result.summary()


def test_manifest_without_good_label_keeps_its_version(tmp_path: Path) -> None:
    """A manifest written before the header had good_label loads with the same version."""
    src = _folder(tmp_path / "src", {"good": 2, "scratch": 2})
    m = import_batch(src, tmp_path / "out").manifest
    line = (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()[0]
    assert "good_label" not in json.loads(line)
    assert Manifest.read(tmp_path / "out").header.version == m.header.version


def test_cli_good_label_option(tmp_path: Path) -> None:
    src = _folder(tmp_path / "src", {"fine": 2, "dented": 2})
    res = CliRunner().invoke(
        app, ["data", "import", str(src), "--out", str(tmp_path / "out"), "--good-label", "FINE"]
    )
    assert res.exit_code == 0, res.output
    assert "'fine' means no defect: stored as class 'good'" in res.output
    assert Manifest.read(tmp_path / "out").header.good_label == "fine"
