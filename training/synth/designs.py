"""Load catalog designs for rendering, without requiring their golden images to exist yet."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from qc_model.catalog import CatalogError, Design


def load_design_lenient(path: Path) -> Design:
    """Like qc_model.catalog.load_design minus the reference-image check (golden.py makes them)."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CatalogError(path, "<file>", f"not valid YAML: {exc}") from None
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
    return design


def load_designs(catalog_dir: Path, only: tuple[str, ...] | None = None) -> list[Design]:
    """Designs of a catalog folder sorted by id, optionally only the ids named in `only`."""
    catalog_dir = Path(catalog_dir)
    if not catalog_dir.is_dir():
        raise CatalogError(catalog_dir, "<catalog>", "catalog folder not found")
    designs = [load_design_lenient(p) for p in sorted(catalog_dir.glob("*.yaml"))]
    if not designs:
        raise CatalogError(catalog_dir, "<catalog>", "no design files (*.yaml) found")
    if only:
        known = {d.id for d in designs}
        unknown = [i for i in only if i not in known]
        if unknown:
            raise CatalogError(
                catalog_dir, "designs", f"unknown design ids {unknown}; known: {sorted(known)}"
            )
        designs = [d for d in designs if d.id in set(only)]
    return sorted(designs, key=lambda d: d.id)
