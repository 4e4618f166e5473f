"""`kito catalog ...`: check the design catalog, render golden images, print the mat."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kito.cli.common import CatalogOpt, catalog_dir, user_errors

catalog_app = typer.Typer(help="The design catalog and the calibration mat.")


@catalog_app.command("check")
@user_errors
def catalog_check(catalog: CatalogOpt = None) -> None:
    """Validate every design file; print one line per design."""
    from qc_model.catalog import load_catalog

    designs = load_catalog(catalog_dir(catalog))
    for d in designs.values():
        dims = ", ".join(
            f"{x.measure} {x.nominal_mm:g}±{x.tolerance_mm:g} mm" for x in d.dimensions
        )
        typer.echo(f"{d.id:24} {d.piece_type:16} {'pair ' if d.pair else ''}{dims}")
    typer.echo(f"{len(designs)} designs OK")


@catalog_app.command("golden")
@user_errors
def catalog_golden(catalog: CatalogOpt = None) -> None:
    """Render each design's reference ("golden") image into the catalog's golden/ folder."""
    from training.synth.golden import write_golden_images

    for path in write_golden_images(catalog_dir(catalog)):
        typer.echo(str(path))


@catalog_app.command("mat")
@user_errors
def catalog_mat(
    out: Annotated[Path, typer.Option(help="PNG file to write")] = Path("kito-mat.png"),
    dpi: Annotated[int, typer.Option(min=72, max=1200)] = 300,
) -> None:
    """Write the printable calibration mat (A4 landscape) as a PNG at the given DPI."""
    import cv2

    from qc_model.mat import DEFAULT_MAT

    img = DEFAULT_MAT.render(dpi / 25.4)
    if not cv2.imwrite(str(out), img):
        raise typer.BadParameter(f"cannot write {out}")
    typer.echo(f"wrote {out} ({img.shape[1]}x{img.shape[0]} px, print at {dpi} dpi, 100% scale)")
