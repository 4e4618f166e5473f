"""`kito anomaly ...`: the per-design anomaly model learnt from good photos (docs/ANOMALY.md).

Registered on the main app by kito.cli; imports its implementation lazily like every command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kito.cli.common import user_errors

anomaly_app = typer.Typer(
    help="The anomaly model: each design's good photos, and how far a photo is from them."
)


def _names(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


@anomaly_app.command("fit")
@user_errors
def fit_cmd(
    manifest: Annotated[Path, typer.Option(help="Data set folder or manifest: its good photos")],
    out: Annotated[Path, typer.Option(help="New package folder to write")],
    package: Annotated[
        Path | None,
        typer.Option(help="Model package to copy and add the anomaly model to (else: alone)"),
    ] = None,
    designs: Annotated[
        str | None, typer.Option(help="Only these designs (comma-separated catalog ids)")
    ] = None,
    bank_splits: Annotated[str, typer.Option(help="Splits whose good photos fill banks")] = "train",
    calibration_split: Annotated[
        str, typer.Option(help="Split of held-out good photos for each design's threshold")
    ] = "val",
    bank_size: Annotated[int, typer.Option(min=16, max=65536, help="Rows per bank")] = 8192,
    sampling: Annotated[
        str, typer.Option(help="Bank rows: 'coreset' (greedy k-center) or 'random'")
    ] = "coreset",
    max_side: Annotated[int, typer.Option(min=32, max=2048, help="Longest input side")] = 320,
    top_k: Annotated[
        int, typer.Option(min=1, max=1000, help="Image score: mean of the k largest patches")
    ] = 3,
    min_photos: Annotated[
        int, typer.Option(min=1, help="Fewer good photos: the design uses its family's bank")
    ] = 10,
    false_hold: Annotated[
        float, typer.Option(min=0.0001, max=0.5, help="Target share of good photos held")
    ] = 0.02,
    proj_dim: Annotated[
        int,
        typer.Option(
            min=0, max=4096, help="Store banks in this many principal directions (0: all)"
        ),
    ] = 0,
    judged_only: Annotated[
        bool, typer.Option(help="Only good photos the photo gate passes (photos on the mat)")
    ] = False,
    catalog: Annotated[Path | None, typer.Option(help="Design catalog (families)")] = None,
    source: Annotated[
        str,
        typer.Option(
            help="Features: 'branch' (the package's surface branch cells, read off the run "
            "the service makes anyway), 'extractor' (the ImageNet trunk, anomaly.onnx), or "
            "'auto': the branch's when --package has a tiled branch"
        ),
    ] = "auto",
    seed: int = 0,
) -> None:
    """Learn each design's good photos (banks per design, family banks for the rest)."""
    from qc_model.anomaly import AnomalyConfig
    from training.anomaly.fit import FitOptions
    from training.anomaly.package import fit_anomaly

    opts = FitOptions(
        config=AnomalyConfig(max_side=max_side, top_k=top_k),
        bank_size=bank_size,
        sampling=sampling,
        proj_dim=proj_dim or None,
        min_photos=min_photos,
        false_hold=false_hold,
        seed=seed,
    )
    meta = fit_anomaly(
        manifest,
        out,
        base=package,
        designs=_names(designs) or None,
        opts=opts,
        bank_splits=tuple(_names(bank_splits)),
        calibration_split=calibration_split,
        catalog_dir=catalog,
        judged_only=judged_only,
        source=source,
    )
    for name, b in sorted(meta.designs.items()):
        typer.echo(
            f"design {name}: {b.photos} photos -> {b.patches} patches, "
            f"calibrated on {b.calibration_photos}"
        )
    for name, b in sorted(meta.families.items()):
        typer.echo(f"family {name}: {b.photos} photos -> {b.patches} patches")
    for d, fam in sorted(meta.family_of.items()):
        typer.echo(f"design {d}: too few good photos of its own, uses family {fam}")
    typer.echo(f"wrote {out}")


@anomaly_app.command("update")
@user_errors
def update_cmd(
    package: Annotated[Path, typer.Option(help="Package (or anomaly model folder) to refresh")],
    manifest: Annotated[Path, typer.Option(help="Newly accepted photos (e.g. kito export)")],
    design: Annotated[str, typer.Option(help="The design whose bank is refreshed")],
    out: Annotated[Path, typer.Option(help="New package folder to write")],
) -> None:
    """Refresh one design's bank from newly accepted good photos (old and new, coreset)."""
    from training.anomaly.update import update_design

    meta = update_design(package, manifest, design, out)
    b = meta.designs[design]
    typer.echo(f"design {design}: {b.photos} photos -> {b.patches} patches; wrote {out}")


@anomaly_app.command("thresholds")
@user_errors
def thresholds_cmd(
    package: Annotated[Path, typer.Option(help="Package (or anomaly model folder)")],
    manifest: Annotated[Path, typer.Option(help="Labelled photos: good and defective")],
    out: Annotated[Path, typer.Option(help="New package folder to write")],
    target_recall: Annotated[
        float, typer.Option(min=0.01, max=1.0, help="Share of defective photos held")
    ] = 0.5,
    split: Annotated[str, typer.Option(help="Split to choose on")] = "val",
    all_photos: Annotated[
        bool, typer.Option(help="Every photo, not only those the photo gate passes")
    ] = False,
    workers: Annotated[int, typer.Option(min=1, help="Processes for the photo gate")] = 1,
    guard_budget: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=0.5,
            help="With --fused: a level guard holding at most this share more good photos "
            "(a defect no class knows); 0: none",
        ),
    ] = 0.02,
    fused: Annotated[
        bool,
        typer.Option(
            help="Choose the fused rule of classifier and anomaly model (a package whose "
            "anomaly model reads its surface branch) instead of the anomaly level alone"
        ),
    ] = False,
) -> None:
    """Choose the review level on labelled val photos for a target recall of the anomaly model
    (or, with --fused, the weight and threshold of the classifier and anomaly model together)."""
    from training.anomaly.thresholds import choose_fused, choose_review

    if fused:
        meta = choose_fused(
            package,
            manifest,
            out,
            target_recall,
            split,
            judged_only=not all_photos,
            workers=workers,
            guard_budget=guard_budget,
        )
        f = meta.fused
        assert f is not None
        typer.echo(
            f"fused rule: margin + {f.weight:g} x log(score / median) >= {f.threshold:.3f} on "
            f"{f.defective} defective and {f.good} good photos: recall {f.recall:.3f}, "
            f"false-hold {f.false_hold:.3f} (the classifier alone at its review bands: "
            f"{f.classifier_recall:.3f}, {f.classifier_false_hold:.3f}; at a margin threshold "
            f"chosen for the same recall: false-hold {f.classifier_threshold_false_hold:.3f}); "
            + (
                f"level guard {f.guard:.4f}: false-hold {f.guard_false_hold:.3f}; "
                if f.guard is not None
                else "no level guard; "
            )
            + f"wrote {out}"
        )
        return
    meta = choose_review(
        package, manifest, out, target_recall, split, judged_only=not all_photos, workers=workers
    )
    r = meta.review
    assert r is not None
    typer.echo(
        f"review level {r.level:.4f} on {r.defective} defective and {r.good} good photos: "
        f"recall {r.recall:.3f}, false-hold {r.false_hold:.3f}; wrote {out}"
    )
