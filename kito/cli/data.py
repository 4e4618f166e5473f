"""`kito data ...`: synthetic photos, imports, merges, previews, crops and statistics."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kito.cli.common import CatalogOpt, catalog_dir, user_errors

data_app = typer.Typer(help="Data sets: synthetic photos, imports, previews, statistics.")


@data_app.command("synth")
@user_errors
def data_synth(
    out: Annotated[Path, typer.Option(help="Output data set folder")],
    count: Annotated[int, typer.Option(min=1, help="Number of photos")] = 200,
    size: Annotated[int, typer.Option(min=256, max=4000, help="Long side of a photo in px")] = 1024,
    defect_rate: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.35,
    difficulty: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.5,
    photos_per_piece: Annotated[int, typer.Option(min=1, max=6)] = 2,
    seed: int = 0,
    workers: Annotated[int, typer.Option(min=0, help="Worker processes (0: all cores)")] = 0,
    designs: Annotated[
        str | None, typer.Option(help="Comma-separated design ids (default: all)")
    ] = None,
    capture: Annotated[
        str | None,
        typer.Option(help="Comma-separated capture conditions forced on every photo"),
    ] = None,
    catalog: CatalogOpt = None,
) -> None:
    """Render synthetic phone photos of catalog designs, with labels, masks and a manifest."""
    from training.synth.generate import SynthOptions, generate_dataset

    opts = SynthOptions(
        count=count,
        size=size,
        defect_rate=defect_rate,
        difficulty=difficulty,
        photos_per_piece=photos_per_piece,
        seed=seed,
        designs=tuple(designs.split(",")) if designs else None,
        force_capture=tuple(capture.split(",")) if capture else (),
    )
    manifest = generate_dataset(catalog_dir(catalog), out, opts, workers=workers)
    typer.echo(f"wrote {len(manifest.records)} photos to {out} (version {manifest.header.version})")


@data_app.command("preview")
@user_errors
def data_preview(
    dataset: Annotated[Path, typer.Argument(help="Data set folder or manifest file")],
    out: Annotated[Path | None, typer.Option(help="PNG to write")] = None,
    count: Annotated[int, typer.Option(min=1, max=400)] = 48,
    seed: int = 0,
) -> None:
    """Write a labelled contact sheet of a data set (PNG) to judge realism at a glance."""
    from training.preview import contact_sheet

    path = contact_sheet(dataset, out, count=count, seed=seed)
    typer.echo(f"wrote {path}")


@data_app.command("import")
@user_errors
def data_import(
    source: Annotated[Path, typer.Argument(help="ImageFolder root (root/<label>/*) or a CSV")],
    out: Annotated[Path, typer.Option(help="Output data set folder")],
    task: Annotated[str, typer.Option(help="auto, multilabel or single_label")] = "auto",
    seed: int = 0,
    good_label: Annotated[
        str | None,
        typer.Option(
            help="The label that means no defect (default: good, ok, pass, normal, functional "
            "or no_defect, any case)"
        ),
    ] = None,
) -> None:
    """Import a labelled batch; unreadable files are listed in a report and skipped."""
    from training.data_import import import_batch

    result = import_batch(source, out, task=task, seed=seed, good_label=good_label)
    typer.echo(result.summary())


@data_app.command("merge")
@user_errors
def data_merge(
    out: Annotated[Path, typer.Option(help="Merged manifest file to write (e.g. data/all.jsonl)")],
    sources: Annotated[
        list[str],
        typer.Argument(
            help="Data set folders or manifests, each optionally with split renames: "
            "data/s1:test=train  data/s2:*=test  data/s3:test=-  (- drops)"
        ),
    ],
    name: Annotated[str | None, typer.Option(help="Header name (default: file stem)")] = None,
) -> None:
    """Combine data sets into one manifest (paths relative to it), renaming or dropping splits."""
    from qc_model.errors import DataError
    from qc_model.manifest import merge

    parsed = []
    for item in sources:
        path, _, spec = item.partition(":")
        mapping: dict[str, str] = {}
        for part in filter(None, spec.split(",")):
            src, eq, dst = part.partition("=")
            if not eq or not src or not dst:
                raise DataError(f"{item!r}: split renames look like test=train or *=test")
            mapping[src] = dst
        parsed.append((Path(path), mapping))
    m = merge(name or out.stem, out, parsed)
    counts = {s: len(m.split(s)) for s in ("train", "val", "test", "holdout") if m.split(s)}
    typer.echo(f"wrote {out}: {len(m.records)} photos {counts} (version {m.header.version})")


@data_app.command("visible")
@user_errors
def data_visible(
    dataset: Annotated[Path, typer.Argument(help="A kito data synth folder")],
    out: Annotated[Path, typer.Option(help="Manifest to write, in or above the data set")],
    min_px: Annotated[
        int, typer.Option(min=1, help="Pixels a defect must change by --min-delta-e to be seen")
    ] = 5,
    min_delta_e: Annotated[
        float,
        typer.Option(
            min=0.5, help="CIE76 ΔE a pixel must change by to count (2.3 is just noticeable)"
        ),
    ] = 6.0,
    target_recall: Annotated[
        float, typer.Option(min=0.5, max=1.0, help="Defect recall for the false-hold floor")
    ] = 0.97,
    workers: Annotated[int, typer.Option(min=1, help="Processes rendering the twins")] = 1,
) -> None:
    """Relabel a synthetic set by what its photos show: unseen defects leave the labels."""
    from training.visible_labels import hold_floor, visible_manifest

    m, stats = visible_manifest(dataset, out, min_px=min_px, workers=workers, delta_e=min_delta_e)
    typer.echo(stats.summary())
    if stats.defective:
        floor = hold_floor(stats.defective, len(stats.dropped), target_recall)
        typer.echo(
            f"with the old labels, a scorer blind to those {len(stats.dropped)} photos must "
            f"hold {floor:.1%} of good photos to reach recall {target_recall:g} (all photos; "
            "the photo gate may refuse many of them: `kito eval` reports the judged ones)"
        )
    typer.echo(f"wrote {out}: {len(m.records)} photos (version {m.header.version})")


@data_app.command("crops")
@user_errors
def data_crops(
    manifests: Annotated[list[Path], typer.Argument(help="Data set folders or manifests")],
    config: Annotated[
        Path | None, typer.Option(help="Training config whose preprocessing to use")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Processes")] = 1,
) -> None:
    """Locate and crop every photo's piece once, into the crop cache that train/eval read."""
    from training.config import load_config
    from training.dataset import CropStore, load_manifest

    cfg = load_config(config)
    for path in manifests:
        manifest, root = load_manifest(path)
        store = CropStore(root, cfg.preprocess, cfg.crop_cache_dir())
        store.warm(manifest.records, desc=path.name, workers=workers)
        typer.echo(f"{path}: {len(manifest.records)} crops cached in {store.dir}")


@data_app.command("stats")
@user_errors
def data_stats(
    dataset: Annotated[Path, typer.Argument(help="Data set folder or manifest file")],
) -> None:
    """Print class balance and split sizes."""
    from rich.console import Console

    from qc_model.dataset_stats import stats_table
    from qc_model.manifest import Manifest

    Console().print(stats_table(Manifest.read(dataset)))


@data_app.command("export-reviews")
@user_errors
def data_export_reviews(
    out: Annotated[Path, typer.Option(help="Output data set folder")],
    since: Annotated[
        str | None, typer.Option(help="Only decisions from this ISO date/time on")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the grouped train/val/test split")] = 0,
) -> None:
    """QC review decisions (service database, KITO_* settings) as a labelled data set."""
    from serving.review.export_cli import export_reviewed

    typer.echo(export_reviewed(out, since=since, seed=seed))
