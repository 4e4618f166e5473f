"""Tests of `kito data stats`: class balance per split and split sizes."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from kito.cli import app
from qc_model.dataset_stats import stats_table
from qc_model.manifest import Header, Manifest, Record


def _rec(i: int, labels: list[str], split: str | None) -> Record:
    return Record(
        id=f"r{i}",
        image=f"images/{i}.jpg",
        sha256="a" * 64,
        width=4,
        height=4,
        piece_id=f"p{i // 2}",
        labels=labels,
        split=split,  # type: ignore[arg-type]
        source="imported",
    )


def _rows(manifest: Manifest) -> dict[str, list[str]]:
    console = Console(width=200, record=True)
    console.print(stats_table(manifest))
    rows = {}
    for line in console.export_text().splitlines():
        cells = [c.strip() for c in line.strip("│┃").split("│" if "│" in line else "┃")]
        if len(cells) > 1 and cells[0]:
            rows[cells[0]] = cells[1:]
    return rows


def _manifest() -> Manifest:
    recs = [
        _rec(0, [], "train"),
        _rec(1, ["scratch"], "train"),
        _rec(2, ["scratch", "bent"], "train"),
        _rec(3, [], "val"),
        _rec(4, ["bent"], "test"),
        _rec(5, [], "test"),
        _rec(6, [], None),
    ]
    return Manifest(header=Header(name="s"), records=recs).with_version()


def test_class_balance_and_split_sizes() -> None:
    rows = _rows(_manifest())
    # Columns in pipeline order, unassigned last.
    assert rows["class"] == ["train", "val", "test", "-", "all"]
    assert rows["good"] == ["1", "1", "1", "1", "4"]
    assert rows["scratch"] == ["2", "0", "0", "0", "2"]
    assert rows["bent"] == ["1", "0", "1", "0", "2"]
    assert rows["tarnish"] == ["0", "0", "0", "0", "0"]
    assert rows["photos"] == ["3", "1", "2", "1", "7"]


def test_single_label_classes() -> None:
    header = Header(name="s", task="single_label", classes=["keep", "reject"])
    recs = [_rec(0, ["keep"], "train"), _rec(1, ["reject"], "train"), _rec(2, ["keep"], "val")]
    rows = _rows(Manifest(header=header, records=recs))
    assert rows["keep"] == ["1", "1", "2"] and rows["reject"] == ["1", "0", "1"]
    assert "good" not in rows and rows["photos"] == ["2", "1", "3"]


def test_cli_stats(tmp_path: Path) -> None:
    _manifest().write(tmp_path / "manifest.jsonl")
    runner = CliRunner()
    result = runner.invoke(app, ["data", "stats", str(tmp_path)], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert "7 photos" in result.output and "scratch" in result.output
    assert "│ photos              │     3 │   1 │    2 │ 1 │   7 │" in result.output
    bad = runner.invoke(app, ["data", "stats", str(tmp_path / "nope")])
    assert bad.exit_code == 2 and "cannot be read" in bad.output
