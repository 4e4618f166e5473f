"""Design catalog: one YAML file per design (SKU), validated by the schema below.

A malformed file raises `CatalogError` naming the file and the field, so that whoever edits the
catalog by hand learns exactly what to fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from qc_model.taxonomy import PIECE_TYPES

PieceType = Literal[
    "hoop_earring",
    "stud_earring",
    "beaded_bracelet",
    "beaded_necklace",
    "beaded_collar",
    "cuff",
    "pendant",
    "chain_necklace",
    "ring",
]
assert set(PieceType.__args__) == set(PIECE_TYPES)  # type: ignore[attr-defined]

Material = Literal["brass", "copper", "aluminium", "glass", "ceramic", "horn", "bone", "mixed"]

# How a dimension is measured on the calibration mat's plane:
# - outer_diameter: diameter of the smallest circle enclosing one piece
# - length / width: long and short side of the piece's minimum-area rectangle
# - loop_length: centre-line length of a strand laid as a closed loop (necklaces, bracelets)
Measure = Literal["outer_diameter", "length", "width", "loop_length"]

Positive = Annotated[float, Field(gt=0)]
LabColour = tuple[Annotated[float, Field(ge=0, le=100)], float, float]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Finish(_Strict):
    """Target surface colour in CIELAB (D65) and the CIEDE2000 distance still accepted."""

    name: str = Field(min_length=1)
    lab: LabColour
    delta_e_tolerance: Positive


class Dimension(_Strict):
    measure: Measure
    nominal_mm: Positive
    tolerance_mm: Positive

    @model_validator(mode="after")
    def _tolerance_below_nominal(self) -> Dimension:
        if self.tolerance_mm >= self.nominal_mm:
            raise ValueError("tolerance_mm must be smaller than nominal_mm")
        return self


class Components(_Strict):
    """Countable parts of one piece: beads of a strand, stones of a setting, links of a chain."""

    kind: Literal["bead", "stone", "link"]
    count: Annotated[int, Field(ge=1, le=400)]
    size_mm: Positive
    # Colours of the components in order around the piece, repeating (CIELAB).
    colours: list[LabColour] = Field(default_factory=list)


class Design(_Strict):
    id: Annotated[str, Field(pattern=r"^[A-Z0-9][A-Z0-9-]{2,39}$")]
    name: str = Field(min_length=1, max_length=120)
    # The name in Kiswahili, as the artisan page shows it in that language (English otherwise).
    name_sw: str | None = Field(default=None, min_length=1, max_length=120)
    piece_type: PieceType
    material: Material
    finish: Finish
    dimensions: list[Dimension] = Field(min_length=1)
    thickness_mm: Positive
    components: Components | None = None
    pair: bool = False
    reference_images: list[str] = Field(min_length=1)
    description: str = ""

    @field_validator("reference_images")
    @classmethod
    def _relative_paths(cls, paths: list[str]) -> list[str]:
        for p in paths:
            if p.startswith("/") or ".." in Path(p).parts:
                raise ValueError(f"reference image path must be relative to the catalog: {p!r}")
        return paths

    @model_validator(mode="after")
    def _consistent(self) -> Design:
        measures = [d.measure for d in self.dimensions]
        if len(set(measures)) != len(measures):
            raise ValueError("each dimension measure may appear only once")
        needs_components = {"beaded_bracelet", "beaded_necklace"}
        if self.piece_type in needs_components and self.components is None:
            raise ValueError(f"a {self.piece_type} must declare its components")
        if self.pair and self.piece_type not in {"hoop_earring", "stud_earring"}:
            raise ValueError("only earrings are made as pairs")
        return self

    def name_in(self, lang: str) -> str:
        """The design's name in "en" or "sw"; English where no Kiswahili name is given."""
        return (self.name_sw or self.name) if lang == "sw" else self.name

    def dimension(self, measure: str) -> Dimension | None:
        return next((d for d in self.dimensions if d.measure == measure), None)


class CatalogError(ValueError):
    """A catalog file that cannot be used; names the file and the offending field."""

    def __init__(self, path: Path, field: str, message: str) -> None:
        self.path = path
        self.field = field
        self.message = message
        super().__init__(f"{path}: field '{field}': {message}")


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: str, line: int) -> None:
        super().__init__(key)
        self.key = key
        self.line = line


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that refuses a key given twice; PyYAML would silently keep the last one,
    hiding a hand edit (a second `dimensions:` block) instead of reporting it."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise _DuplicateKey(str(key), key_node.start_mark.line + 1)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_design(path: Path, *, check_references: bool = True) -> Design:
    """One design file, validated. `check_references=False` skips the golden-image check, for
    the renderer that creates those images."""
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except _DuplicateKey as exc:
        raise CatalogError(path, exc.key, f"given twice (line {exc.line})") from None
    except yaml.YAMLError as exc:
        # One line for the CLI: PyYAML's own message spans several with a source excerpt.
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise CatalogError(path, "<file>", f"not valid YAML: {problem}{where}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(path, "<file>", f"cannot be read: {exc}") from None
    if not isinstance(raw, dict):
        raise CatalogError(path, "<file>", "must hold a mapping of fields")
    try:
        design = Design.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "<design>"
        raise CatalogError(path, field, err["msg"]) from None
    if design.id != path.stem:
        raise CatalogError(path, "id", f"id {design.id!r} must match the file name {path.stem!r}")
    for i, ref in enumerate(design.reference_images if check_references else []):
        if not (path.parent / ref).is_file():
            raise CatalogError(path, f"reference_images.{i}", f"file not found: {ref}")
    return design


def load_catalog(directory: Path | str) -> dict[str, Design]:
    """All designs of a catalog folder (`*.yaml`), keyed and sorted by id."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CatalogError(directory, "<catalog>", "catalog folder not found")
    designs: dict[str, Design] = {}
    for path in sorted(directory.glob("*.yaml")):
        design = load_design(path)
        designs[design.id] = design
    if not designs:
        raise CatalogError(directory, "<catalog>", "no design files (*.yaml) found")
    return dict(sorted(designs.items()))


def default_catalog_dir() -> Path:
    """The catalog shipped in the repository (`datasets/catalog`)."""
    return Path(__file__).resolve().parent.parent / "datasets" / "catalog"
