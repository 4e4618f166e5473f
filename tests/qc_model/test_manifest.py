"""Tests of the manifest schema: round trip, content-hash version, tamper and bad-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from qc_model.manifest import Header, Manifest, ManifestError, Record


def _record(i: int, **kw: object) -> Record:
    fields: dict[str, object] = {
        "id": f"r{i}",
        "image": f"images/{i}.jpg",
        "sha256": f"{i:064x}",
        "width": 640,
        "height": 480,
        "design_id": "KQ-HOOP-BR-30",
        "piece_id": f"p{i // 2}",
        "labels": ["scratch"] if i % 3 == 0 else [],
        "masks": {"scratch": f"masks/{i}_scratch.png"} if i % 3 == 0 else {},
        "capture": ["rotation"],
        "split": "train",
        "source": "synthetic",
        "meta": {"size_mm": 30.25, "bbox": [1, 2, 3, 4]},
    }
    fields.update(kw)
    return Record.model_validate(fields)


def _manifest(n: int = 6) -> Manifest:
    header = Header(name="t", recipe={"command": "test", "seed": 3})
    return Manifest(header=header, records=[_record(i) for i in range(n)])


def test_round_trip_and_version(tmp_path: Path) -> None:
    written = _manifest().write(tmp_path / "a" / "manifest.jsonl")
    assert len(written.header.version) == 16
    assert written.header.version == _manifest().content_hash()
    read = Manifest.read(tmp_path / "a")  # a folder means its manifest.jsonl
    assert read == written
    # Stable: writing the same content again gives the same id and the same bytes.
    again = read.write(tmp_path / "b.jsonl")
    assert again.header.version == written.header.version
    assert (tmp_path / "b.jsonl").read_bytes() == (tmp_path / "a" / "manifest.jsonl").read_bytes()
    # Any change of content or recipe changes the id.
    changed = _manifest()
    changed.records[1] = _record(1, labels=["bent"])
    assert changed.content_hash() != written.header.version
    other = Manifest(header=Header(name="t", recipe={"seed": 4}), records=_manifest().records)
    assert other.content_hash() != written.header.version


def test_tampered_file_detected(tmp_path: Path) -> None:
    path = tmp_path / "manifest.jsonl"
    _manifest().write(path)
    lines = path.read_text().splitlines()
    rec = json.loads(lines[2])
    rec["labels"] = ["tarnish"]
    lines[2] = json.dumps(rec)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ManifestError, match="does not match its content"):
        Manifest.read(path)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r":3: "),
        ('{"id": "x"}', r":3: field 'image': Field required"),
        (json.dumps(_record(9).model_dump() | {"width": 0}), r":3: field 'width'"),
        (json.dumps(_record(9).model_dump() | {"colour": "red"}), r":3: field 'colour'"),
        (json.dumps(_record(9).model_dump() | {"split": "dev"}), r":3: field 'split'"),
    ],
)
def test_bad_line_named_with_line_number(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "m.jsonl"
    _manifest(3).write(path)
    lines = path.read_text().splitlines()
    lines[2] = line
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ManifestError, match=f"m.jsonl{message}"):
        Manifest.read(path)


def test_bad_header_and_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text("")
    with pytest.raises(ManifestError, match="empty file"):
        Manifest.read(path)
    path.write_text('{"kind": "something-else", "name": "x"}\n')
    with pytest.raises(ManifestError, match=r"m.jsonl:1: bad header: field 'kind'"):
        Manifest.read(path)
    with pytest.raises(ManifestError, match="cannot be read"):
        Manifest.read(tmp_path / "missing")


def test_labels_outside_classes_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"labels \['rust'\] are not among the classes"):
        Manifest(header=Header(name="t"), records=[_record(0, labels=["rust"])])
    single = Header(name="s", task="single_label", classes=["good", "reject"])
    with pytest.raises(ValidationError, match="exactly one label"):
        Manifest(header=single, records=[_record(0, labels=[])])
    with pytest.raises(ValidationError, match="not in the taxonomy"):
        Manifest(header=Header(name="t", classes=["scratch", "dusty"]), records=[])
    with pytest.raises(ValidationError, match=r"classes listed more than once: \['bent'\]"):
        Manifest(header=Header(name="t", classes=["bent", "scratch", "bent"]), records=[])
    with pytest.raises(ValidationError, match="duplicate record ids"):
        Manifest(header=Header(name="t"), records=[_record(0), _record(0)])
    # Through a file: a hand-edited manifest without a version is still validated.
    path = tmp_path / "m.jsonl"
    path.write_text(
        Header(name="t").model_dump_json() + "\n" + _record(0, labels=["rust"]).model_dump_json()
    )
    with pytest.raises(ManifestError, match="not among the classes"):
        Manifest.read(path)


@pytest.mark.parametrize(
    "path", ["../secret.jpg", "images/../../x.jpg", "/etc/passwd", "images\\x.jpg", ""]
)
def test_path_traversal_refused(path: str) -> None:
    with pytest.raises(ValidationError, match="relative POSIX path"):
        _record(0, image=path)
    with pytest.raises(ValidationError, match="relative POSIX path"):
        _record(0, masks={"scratch": path})
