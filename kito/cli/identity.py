"""`kito identity ...`: the design references that catch a piece made to another design than the
one declared (`design_mismatch`, docs/CHECKS.md).

Registered on the main app by kito.cli; imports its implementation lazily like every command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kito.cli.common import user_errors

identity_app = typer.Typer(
    help="Design references: which design a photo shows, against the one declared."
)


@identity_app.command("fit")
@user_errors
def fit_cmd(
    package: Annotated[Path, typer.Option(help="Model package to copy and add references to")],
    manifest: Annotated[Path, typer.Option(help="Data set folder or manifest of photos")],
    out: Annotated[Path, typer.Option(help="New package folder (may be --package: replaced)")],
    splits: Annotated[str, typer.Option(help="Comma-separated splits to take photos from")] = (
        "train,val"
    ),
    false_flag: Annotated[
        float,
        typer.Option(min=0.0001, max=0.5, help="Target share of rightly declared photos flagged"),
    ] = 0.01,
    min_refs: Annotated[
        int, typer.Option(min=1, help="A design with fewer reference photos is not checked")
    ] = 5,
) -> None:
    """Describe each photo the gate passes (the network's crop embedding and the piece's size
    in mm) and keep them per design, with the threshold for the false-flag target."""
    from training.identity_fit import fit_identity

    names = tuple(p.strip() for p in splits.split(",") if p.strip())
    ref = fit_identity(
        package, manifest, out, splits=names, false_flag=false_flag, min_refs=min_refs
    )
    seen = ref.fitted_on
    typer.echo(
        f"wrote {out}: {len(ref.designs)} designs, {sum(ref.references.values())} reference "
        f"photos, {ref.dims}-d embedding; threshold {ref.threshold:.3f} (ratio) for "
        f"{ref.false_flag:.1%} false flags; on the reference photos themselves (own piece left "
        f"out): {seen['flagged_declared_right']:.1%} flagged declared right, "
        f"{seen['caught_declared_wrong']:.1%} caught declared as another design"
    )
