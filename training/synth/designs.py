"""Load catalog designs for rendering, without requiring their golden images to exist yet."""

from __future__ import annotations

from pathlib import Path

from qc_model.catalog import CatalogError, Design, load_design


def load_designs(catalog_dir: Path, only: tuple[str, ...] | None = None) -> list[Design]:
    """Designs of a catalog folder sorted by id, optionally only the ids named in `only`."""
    catalog_dir = Path(catalog_dir)
    if not catalog_dir.is_dir():
        raise CatalogError(catalog_dir, "<catalog>", "catalog folder not found")
    designs = [load_design(p, check_references=False) for p in sorted(catalog_dir.glob("*.yaml"))]
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
