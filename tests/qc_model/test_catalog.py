"""Tests of the design catalog: the bundled designs load, malformed files name file and field."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from kito.cli import app
from qc_model.catalog import CatalogError, default_catalog_dir, load_catalog, load_design
from qc_model.taxonomy import PIECE_TYPES

# A tiny valid PNG (1x1 grey): the schema only checks that reference images exist.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010800000000"
    "3a7e9b550000000a49444154789c63680000000200017e3a5b4c0000000049454e44ae426082"
)


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    """A copy of the bundled YAML files with placeholder reference images."""
    out = tmp_path / "catalog"
    out.mkdir()
    for src in default_catalog_dir().glob("*.yaml"):
        shutil.copy(src, out / src.name)
        for ref in yaml.safe_load(src.read_text())["reference_images"]:
            (out / ref).parent.mkdir(parents=True, exist_ok=True)
            (out / ref).write_bytes(PNG)
    return out


def test_catalog_copy_loads(catalog: Path) -> None:
    designs = load_catalog(catalog)
    assert len(designs) >= 12
    assert list(designs) == sorted(designs)
    assert {d.piece_type for d in designs.values()} <= set(PIECE_TYPES)
    hoop = designs["KQ-HOOP-BR-30"]
    assert hoop.pair and hoop.dimension("outer_diameter").nominal_mm == 30.0  # type: ignore[union-attr]
    for d in designs.values():
        for dim in d.dimensions:
            assert 0 < dim.tolerance_mm < dim.nominal_mm


def test_bundled_catalog_loads_with_its_golden_images() -> None:
    # Needs datasets/catalog/golden/*.png (written by `kito catalog golden`).
    designs = load_catalog(default_catalog_dir())
    assert len(designs) >= 12
    result = CliRunner().invoke(app, ["catalog", "check"])
    assert result.exit_code == 0, result.output
    assert f"{len(designs)} designs OK" in result.output


def _edit(catalog: Path, name: str, change: Callable[[dict[str, Any]], None]) -> Path:
    path = catalog / f"{name}.yaml"
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: d.__setitem__(key, value)


def _dim(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: d["dimensions"][0].__setitem__(key, value)


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (lambda d: d.pop("name"), "name", "Field required"),
        (_set("thickness_mm", "thick"), "thickness_mm", "valid number"),
        (_set("dimensions", "30 mm"), "dimensions", "valid list"),
        (_dim("nominal_mm", -30.0), "dimensions.0.nominal_mm", "greater than 0"),
        (_dim("tolerance_mm", 30.0), "dimensions.0", "tolerance_mm must be smaller"),
        (_set("piece_type", "bangle"), "piece_type", "hoop_earring"),
        (_set("colour", "red"), "colour", "Extra inputs are not permitted"),
        (lambda d: d["finish"].__setitem__("lab", [120, 0, 0]), "finish.lab.0", "less than"),
        (_set("id", "KQ-HOOP-BR-31"), "id", "must match the file name"),
        (_set("reference_images", ["golden/none.png"]), "reference_images.0", "file not found"),
        (_set("reference_images", ["../../etc/x.png"]), "reference_images", "relative"),
    ],
)
def test_malformed_design_names_file_and_field(
    catalog: Path, change: Callable[[dict[str, Any]], None], field: str, message: str
) -> None:
    path = _edit(catalog, "KQ-HOOP-BR-30", change)
    with pytest.raises(CatalogError) as info:
        load_catalog(catalog)
    assert info.value.path == path
    assert info.value.field == field
    assert message in info.value.message
    assert str(path) in str(info.value) and f"field '{field}'" in str(info.value)


def test_bad_yaml_and_non_mapping(catalog: Path) -> None:
    path = catalog / "KQ-HOOP-BR-30.yaml"
    path.write_text("id: [unclosed\nname: x\n")
    with pytest.raises(CatalogError, match="not valid YAML") as info:
        load_design(path)
    assert info.value.path == path
    # One line, with the position: the CLI prints it as a single error line.
    assert "\n" not in str(info.value) and "line 2, column 5" in str(info.value)
    path.write_text("- just\n- a list\n")
    with pytest.raises(CatalogError, match="must hold a mapping"):
        load_design(path)


def test_key_given_twice(catalog: Path) -> None:
    path = catalog / "KQ-HOOP-BR-30.yaml"
    path.write_text(path.read_text() + "thickness_mm: 3.0\n")
    with pytest.raises(CatalogError, match=r"field 'thickness_mm': given twice \(line 1[0-9]\)"):
        load_design(path)


def test_missing_reference_image(catalog: Path) -> None:
    (catalog / "golden" / "KQ-STUD-BR-12.png").unlink()
    with pytest.raises(CatalogError, match=r"KQ-STUD-BR-12.yaml: field 'reference_images.0'"):
        load_catalog(catalog)


def test_empty_or_missing_catalog(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="no design files"):
        load_catalog(tmp_path)
    with pytest.raises(CatalogError, match="catalog folder not found"):
        load_catalog(tmp_path / "nope")


def test_cli_check(catalog: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["catalog", "check", "--catalog", str(catalog)])
    assert ok.exit_code == 0, ok.output
    assert "KQ-HOOP-BR-30" in ok.output and "designs OK" in ok.output
    _edit(catalog, "KQ-CUFF-BR-65", _dim("nominal_mm", 0))
    bad = runner.invoke(app, ["catalog", "check", "--catalog", str(catalog)])
    assert bad.exit_code == 2
    assert "KQ-CUFF-BR-65.yaml: field 'dimensions.0.nominal_mm'" in bad.output
    assert "Traceback" not in bad.output
