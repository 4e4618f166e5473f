"""`kito surface ...`: train a surface branch and attach it to a model package."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kito.cli.common import JudgedOnlyOpt, WorkersOpt, user_errors

surface_app = typer.Typer(help="The surface branch: fine defects at the photo's own scale.")


@surface_app.command("train")
@user_errors
def surface_train(
    manifest: Annotated[Path, typer.Option(help="Manifest with defect masks and a train split")],
    out: Annotated[Path, typer.Option(help="New run folder: surface.pt, surface.json")],
    steps: Annotated[int, typer.Option(min=1, help="Optimizer steps")] = 5000,
    batch: Annotated[int, typer.Option(min=1, help="Patches per step")] = 32,
    patch: Annotated[int, typer.Option(min=16, help="Patch side in px (multiple of 8)")] = 96,
    lr: Annotated[float, typer.Option(min=0.0)] = 1e-3,
    pos_weight: Annotated[float, typer.Option(min=0.0, help="Weight of defect cells")] = 5.0,
    px_per_mm: Annotated[
        float | None, typer.Option(help="Scale to train and serve at (default: the photos')")
    ] = None,
    limit: Annotated[int, typer.Option(min=0, help="Use the first N training photos")] = 0,
    judged_only: JudgedOnlyOpt = False,
    piece_fraction: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Share of negative patches centred on the piece"),
    ] = 0.5,
    hard_fraction: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="Share of negative patches centred on mined hard negatives"
        ),
    ] = 0.5,
    mine_every: Annotated[
        int, typer.Option(min=0, help="Mine hard negatives every N steps (0: never)")
    ] = 1000,
    mine_photos: Annotated[
        int, typer.Option(min=1, help="Training crops scored per mining round")
    ] = 400,
    arch: Annotated[
        str,
        typer.Option(
            help="Branch network: s8+s16 (stride-8 and stride-16 stages) or s8 (stride-8 "
            "stages only: about twice as fast to train, weaker)"
        ),
    ] = "s8+s16",
    seed: int = 0,
    workers: WorkersOpt = 1,
) -> None:
    """Train a surface branch on patches with per-cell targets from the defect masks."""
    from training.surface import SurfaceTrainConfig, train_surface

    config = SurfaceTrainConfig(
        steps=steps, batch=batch, patch=patch, lr=lr, pos_weight=pos_weight,
        px_per_mm=px_per_mm, limit=limit, seed=seed, workers=workers, judged_only=judged_only,
        piece_fraction=piece_fraction, hard_fraction=hard_fraction, mine_every=mine_every,
        mine_photos=mine_photos, arch=arch,
    )  # fmt: skip
    info = train_surface(manifest, out, config)
    t = info["timing"]
    typer.echo(
        f"wrote {out / 'surface.pt'}: {t['steps']} steps in {t['seconds']:.0f} s "
        f"({t['patches_per_s']:.0f} patches/s)"
    )
    for name, row in info.get("val", {}).items():
        typer.echo(f"  val {name:18} AP {row['ap']:.3f} ({row['positives']} positives)")


@surface_app.command("attach")
@user_errors
def surface_attach(
    package: Annotated[Path, typer.Option(help="The model package to extend")],
    surface: Annotated[Path, typer.Option(help="surface.pt, or a package that has a branch")],
    calibration_manifest: Annotated[
        Path, typer.Option(help="Data set whose val split fits the fusion and thresholds")
    ],
    out: Annotated[Path, typer.Option(help="New package folder")],
    fuse: Annotated[
        str | None,
        typer.Option(help="Comma-separated classes to fuse (default: where val AP improves)"),
    ] = None,
    target_recall: Annotated[float, typer.Option(min=0.5, max=1.0)] = 0.97,
    judged_only: JudgedOnlyOpt = False,
    tile: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Score the branch in tiles of N px over the piece, 0: the whole crop "
            "(default: as the branch was trained, its patch size)",
        ),
    ] = None,
    workers: WorkersOpt = 1,
) -> None:
    """Add a surface branch to a package: fusion and thresholds fitted again on val."""
    from training.surface import attach

    only = [c.strip() for c in fuse.split(",") if c.strip()] if fuse else None
    meta = attach(
        package, surface, calibration_manifest, out, target_recall=target_recall,
        workers=workers, fuse=only, judged_only=judged_only, tile=tile,
    )  # fmt: skip
    assert meta.surface is not None
    val = meta.metrics["val"]
    offsets = [c for c, f in meta.surface.fusion.items() if f.design_offsets]
    by_design = f"; design offsets for {', '.join(offsets)}" if offsets else ""
    typer.echo(
        f"wrote {out}: fused {', '.join(meta.surface.fusion)}{by_design}; "
        f"on {val['photos']} val photos"
        f"{' the gate passes' if judged_only else ''}: macro-F1 "
        f"{val['macro_f1']:.3f}, recall {val['any_defect']['recall']:.3f}, false-hold "
        f"{val['any_defect']['false_hold_rate']:.3f}"
    )
