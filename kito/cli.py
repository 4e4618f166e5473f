"""`kito` command line. Each command imports its implementation inside the function body, so
`kito --help` stays fast and `kito serve` never pulls in torch."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

app = typer.Typer(
    help="Kito QC: quality control for handmade jewelry from phone photos.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Data sets: synthetic photos, imports, previews, statistics.")
catalog_app = typer.Typer(help="The design catalog and the calibration mat.")
app.add_typer(data_app, name="data", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog", no_args_is_help=True)
db_app = typer.Typer(help="The service database (SQLite or PostgreSQL, from KITO_DATABASE_URL).")
users_app = typer.Typer(help="Service users and their API tokens.")
app.add_typer(db_app, name="db", no_args_is_help=True)
app.add_typer(users_app, name="users", no_args_is_help=True)
payouts_app = typer.Typer(help="Payouts: deliver them to the payment webhook.")
app.add_typer(payouts_app, name="payouts", no_args_is_help=True)
models_app = typer.Typer(help="The model registry: champion, shadow, candidates, promotion.")
app.add_typer(models_app, name="models", no_args_is_help=True)
surface_app = typer.Typer(help="The surface branch: fine defects at the photo's own scale.")
app.add_typer(surface_app, name="surface", no_args_is_help=True)

F = TypeVar("F", bound=Callable[..., Any])


def user_errors(fn: F) -> F:
    """Turn the project's own input errors into a one-line message and exit code 2."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from qc_model.errors import USER_ERRORS

        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as exc:
            typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


CatalogOpt = Annotated[
    Path | None,
    typer.Option(help="Design catalog folder (default: the bundled datasets/catalog)."),
]


def _catalog_dir(catalog: Path | None) -> Path:
    from qc_model.catalog import default_catalog_dir

    return catalog or default_catalog_dir()


# -- catalog ------------------------------------------------------------------------------------
@catalog_app.command("check")
@user_errors
def catalog_check(catalog: CatalogOpt = None) -> None:
    """Validate every design file; print one line per design."""
    from qc_model.catalog import load_catalog

    designs = load_catalog(_catalog_dir(catalog))
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

    for path in write_golden_images(_catalog_dir(catalog)):
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


# -- data ---------------------------------------------------------------------------------------
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
    manifest = generate_dataset(_catalog_dir(catalog), out, opts, workers=workers)
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
    from serving.db.cli import export_reviewed

    typer.echo(export_reviewed(out, since=since, seed=seed))


# -- training -----------------------------------------------------------------------------------
@app.command("train")
@user_errors
def train_cmd(
    manifest: Annotated[Path, typer.Option(help="Data set folder or manifest.jsonl")],
    out: Annotated[Path, typer.Option(help="Run folder, e.g. runs/NAME")],
    config: Annotated[
        Path | None, typer.Option(help="YAML settings, e.g. configs/train_default.yaml")
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override a setting: KEY=VALUE (repeat)")
    ] = None,
    resume: Annotated[Path | None, typer.Option(help="checkpoint.pt to continue from")] = None,
) -> None:
    """Train the defect network; several GPUs/hosts: torchrun -m training.train (same options)."""
    from training.train import get_args_parser, main

    argv = ["--manifest", str(manifest), "--out", str(out)]
    argv += ["--config", str(config)] if config else []
    argv += ["--resume", str(resume)] if resume else []
    for item in set_ or []:
        argv += ["--set", item]
    run = main(get_args_parser().parse_args(argv))
    typer.echo(f"run folder: {run} (checkpoint.pt, best.pt, metrics.jsonl, config.yaml)")


# -- evaluation and export ------------------------------------------------------------------------
WorkersOpt = Annotated[
    int, typer.Option(min=1, help="Processes that locate and crop the pieces (cached crops)")
]
JudgedOnlyOpt = Annotated[
    bool,
    typer.Option(
        "--judged-only/--all-photos",
        help="Use only the photos the photo gate passes (the ones the service judges)",
    ),
]


@app.command("eval")
@user_errors
def eval_cmd(
    manifest: Annotated[Path, typer.Option(help="Data set folder or manifest (needs a val split)")],
    out: Annotated[Path, typer.Option(help="Report folder: index.html, metrics.json, PNGs")],
    checkpoint: Annotated[
        Path | None, typer.Option(help="checkpoint.pt of a training run (calibrated here)")
    ] = None,
    package: Annotated[
        Path | None,
        typer.Option(help="A model package folder instead, scored at its own thresholds"),
    ] = None,
    split: Annotated[str, typer.Option(help="Split to score")] = "test",
    target_recall: Annotated[float, typer.Option(min=0.5, max=1.0)] = 0.97,
    workers: WorkersOpt = 1,
) -> None:
    """Score a split and write metrics and an HTML report: a checkpoint gets temperature and
    thresholds fitted on val; a package (--package) is scored as serving runs it."""
    from qc_model.errors import DataError
    from training.eval_summary import summary_lines
    from training.evaluate import evaluate, evaluate_package

    if (checkpoint is None) == (package is None):
        raise DataError("give exactly one of --checkpoint and --package")
    if package is not None:
        s = evaluate_package(package, manifest, out, split=split, workers=workers).metrics
    else:
        assert checkpoint is not None
        s = evaluate(
            checkpoint, manifest, out, split=split, target_recall=target_recall, workers=workers
        ).metrics
    for line in summary_lines(s, split, out):
        typer.echo(line)


@app.command("export")
@user_errors
def export_cmd(
    checkpoint: Annotated[Path, typer.Option(help="checkpoint.pt of a training run")],
    calibration_manifest: Annotated[
        Path, typer.Option(help="Data set whose val split fits temperature and thresholds")
    ],
    out: Annotated[Path, typer.Option(help="New package folder, e.g. models/NAME")],
    int8: Annotated[bool, typer.Option(help="Also write an INT8 package at OUT-int8")] = False,
    int8_format: Annotated[
        str, typer.Option(help="INT8 graph format: qoperator or qdq")
    ] = "qoperator",
    target_recall: Annotated[float, typer.Option(min=0.5, max=1.0)] = 0.97,
    workers: WorkersOpt = 1,
) -> None:
    """Checkpoint -> ONNX model package (calibrated, parity-checked against torch)."""
    from training.export import export_package

    meta = export_package(
        checkpoint, calibration_manifest, out, target_recall=target_recall, workers=workers
    )
    parity = meta.metrics["parity"]
    typer.echo(
        f"wrote {out} (T {meta.temperature:.3f}, parity max |Δp| "
        f"{parity['max_abs_probs']:.1e} on {parity['samples']} photos)"
    )
    if int8:
        from training.quantize import quantize_package

        q = quantize_package(
            out, calibration_manifest, out.with_name(out.name + "-int8"), fmt=int8_format
        )
        r = q.metrics["int8"]
        typer.echo(
            f"wrote {out.name}-int8 (macro-F1 {r['macro_f1_fp32']:.4f} -> "
            f"{r['macro_f1_int8']:.4f} on {r['validation_photos']} val photos)"
        )


@app.command("quantize")
@user_errors
def quantize_cmd(
    package: Annotated[Path, typer.Option(help="FP32 model package folder, e.g. models/default")],
    calibration_manifest: Annotated[
        Path,
        typer.Option(help="Data set: ranges from its train photos, the check on its val photos"),
    ],
    out: Annotated[Path, typer.Option(help="New INT8 package folder")],
    fmt: Annotated[str, typer.Option("--format", help="INT8 graph format: qoperator or qdq")] = (
        "qoperator"
    ),
    max_drop: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Most macro-F1 it may lose (0.01: 1 point)")
    ] = 0.01,
) -> None:
    """FP32 package -> INT8 package, refused if it loses more than MAX_DROP of macro-F1."""
    from training.quantize import quantize_package

    q = quantize_package(package, calibration_manifest, out, max_drop=max_drop, fmt=fmt)
    r = q.metrics["int8"]
    typer.echo(
        f"wrote {out} ({r['format']}; macro-F1 {r['macro_f1_fp32']:.4f} -> "
        f"{r['macro_f1_int8']:.4f} on {r['validation_photos']} val photos, "
        f"ranges from {r['calibration_photos']} train photos; |Δp| mean "
        f"{r['mean_abs_dprob']:.4f}, max {r['max_abs_dprob']:.3f}; "
        f"{r['photos_crossing_a_threshold']} photos cross a threshold)"
    )


@app.command("repack")
@user_errors
def repack_cmd(
    package: Annotated[Path, typer.Option(help="Model package folder, e.g. models/default")],
    out: Annotated[Path, typer.Option(help="New package folder")],
) -> None:
    """Package -> the same package with its padding folded into its convolutions (faster)."""
    from training.fold_pads import repack_package

    meta, folded, diff = repack_package(package, out)
    typer.echo(
        f"wrote {out} ({meta.version}: {folded} Pads folded into their convolutions; "
        f"outputs equal to {diff:.1e})"
    )


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
    from training.surface import train_surface

    info = train_surface(
        manifest, out, steps=steps, batch=batch, patch=patch, lr=lr, pos_weight=pos_weight,
        px_per_mm=px_per_mm, limit=limit, seed=seed, workers=workers, judged_only=judged_only,
        piece_fraction=piece_fraction, hard_fraction=hard_fraction, mine_every=mine_every,
        mine_photos=mine_photos, arch=arch,
    )  # fmt: skip
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


@app.command("thresholds")
@user_errors
def thresholds(
    package: Annotated[Path, typer.Option(help="The model package whose thresholds to choose")],
    calibration_manifest: Annotated[
        Path, typer.Option(help="Data set whose val split the thresholds are chosen on")
    ],
    out: Annotated[Path, typer.Option(help="New package folder")],
    judged_only: JudgedOnlyOpt = True,
    target_recall: Annotated[
        float | None,
        typer.Option(min=0.5, max=1.0, help="Any-defect recall (default: the package's)"),
    ] = None,
    without_branch: Annotated[
        bool,
        typer.Option(
            "--without-branch",
            help="Leave the package's surface branch out: the defect network alone, with "
            "thresholds for its own scores (for a CPU too slow to serve the branch)",
        ),
    ] = False,
    workers: WorkersOpt = 1,
) -> None:
    """Choose a package's operating thresholds again; the networks stay as they are."""
    from training.judged import rethreshold

    meta = rethreshold(
        package, calibration_manifest, out, judged_only=judged_only,
        target_recall=target_recall, workers=workers, without_branch=without_branch,
    )  # fmt: skip
    val = meta.metrics["val"]
    typer.echo(
        f"wrote {out} ({meta.version}{', no surface branch' if without_branch else ''}): "
        f"on {val['photos']} val photos"
        f"{' the gate passes' if judged_only else ''}: macro-F1 {val['macro_f1']:.3f}, recall "
        f"{val['any_defect']['recall']:.3f}, false-hold {val['any_defect']['false_hold_rate']:.3f}"
    )


# -- service ------------------------------------------------------------------------------------
@app.command("serve")
@user_errors
def serve(
    host: Annotated[
        str | None, typer.Option(help="Bind address (default KITO_HOST, 127.0.0.1)")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default KITO_PORT, 8000)")] = None,
) -> None:
    """Run the inspection service (FastAPI under uvicorn); settings from KITO_* variables."""
    import uvicorn

    from serving.app import create_app
    from serving.settings import load_settings

    overrides = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    settings = load_settings(**overrides)
    app = create_app(settings)
    typer.echo(f"Kito QC on http://{settings.host}:{settings.port} (API docs at /docs)")
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level)


@app.command("demo")
@user_errors
def demo(
    port: Annotated[int | None, typer.Option(help="Port (default KITO_PORT, 8000)")] = None,
    serve_forever: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Keep serving after seeding")
    ] = True,
) -> None:
    """Start the service with the bundled model, seed users, an order and three inspections
    (pass, fail, retake), print the tokens and the page URLs, and keep serving."""
    from kito.demo import run_demo
    from serving.settings import load_settings

    settings = load_settings(**({"port": port} if port is not None else {}))
    run_demo(settings, serve_forever=serve_forever, echo=typer.echo)


@db_app.command("upgrade")
@user_errors
def db_upgrade() -> None:
    """Apply the schema migrations (the service also does this at start)."""
    from serving.db.cli import upgrade_database

    typer.echo(upgrade_database())


@users_app.command("create")
@user_errors
def users_create(
    name: Annotated[str, typer.Option(help="Display name")],
    role: Annotated[str, typer.Option(help="artisan, qc or admin")] = "artisan",
) -> None:
    """Create a user and print its API token once (it is stored only as a hash)."""
    from serving.db.cli import create_user_with_token

    user_id, token = create_user_with_token(name=name, role=role)
    typer.echo(f"user {user_id} ({role}) created; API token (shown once, keep it safe):")
    typer.echo(token)


@payouts_app.command("dispatch")
@user_errors
def payouts_dispatch(
    once: Annotated[bool, typer.Option("--once", help="One pass, then exit")] = False,
) -> None:
    """POST due payouts to KITO_PAYOUT_WEBHOOK_URL, retrying with backoff until delivered."""
    from serving.db.cli import dispatch_payouts

    dispatch_payouts(once=once, echo=typer.echo)


@app.command("retrain")
@user_errors
def retrain_cmd(
    base: Annotated[
        Path | None,
        typer.Option(help="Data the champion learnt from (default: recorded by the last retrain)"),
    ] = None,
    reviews: Annotated[
        Path | None,
        typer.Option(help="A reviewed data set (default: export the reviews since the champion)"),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Run folder (default runs/retrain-TIME)")] = None,
    config: Annotated[
        Path | None, typer.Option(help="Training YAML instead of the champion's configuration")
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override a setting: KEY=VALUE (repeat)")
    ] = None,
    init: Annotated[str, typer.Option(help="champion (its weights) or imagenet")] = "champion",
    min_reviews: Annotated[
        int | None,
        typer.Option(min=0, help="Reviewed pieces needed (default KITO_RETRAIN_MIN_REVIEWS)"),
    ] = None,
    promote: Annotated[bool, typer.Option(help="Promote when the gate passes")] = True,
    every: Annotated[
        float | None, typer.Option(min=1, help="Run again every SECONDS (a schedule)")
    ] = None,
) -> None:
    """Train a challenger on the champion's data and QC's reviews; promote it if it passes."""
    import time

    from kito.retrain import default_out, retrain

    if init not in ("champion", "imagenet"):
        raise typer.BadParameter("--init must be champion or imagenet")
    while True:
        try:
            outcome = retrain(
                out=out or default_out(), base=base, reviews=reviews, config=config,
                overrides=set_ or [], init=init, min_reviews=min_reviews,  # type: ignore[arg-type]
                promote=promote, echo=typer.echo,
            )  # fmt: skip
            typer.echo(outcome.message)
            if outcome.report is not None:
                typer.echo(f"comparison report: {outcome.report}")
        except Exception as exc:  # a scheduled run survives one failed attempt
            if every is None:
                raise
            typer.secho(
                f"retrain failed (champion untouched): {exc}", fg=typer.colors.RED, err=True
            )
        if every is None:
            return
        out = None  # a new run folder each time
        time.sleep(every)


# -- model registry -----------------------------------------------------------------------------
@models_app.command("list")
@user_errors
def models_list(
    state: Annotated[
        str | None, typer.Option(help="candidate, shadow, champion or retired")
    ] = None,
) -> None:
    """Every registered model package, newest first."""
    from serving.registry_cli import list_models

    rows = list_models(state)
    if not rows:
        typer.echo("no models registered")
        return
    widths = {k: max(len(k), *(len(r[k]) for r in rows)) for k in rows[0]}
    typer.echo("  ".join(k.ljust(w) for k, w in widths.items()).rstrip())
    for r in rows:
        typer.echo("  ".join(r[k].ljust(w) for k, w in widths.items()).rstrip())


@models_app.command("show")
@user_errors
def models_show(version: Annotated[str, typer.Argument(help="name@version")]) -> None:
    """One model's provenance, metrics, gate result and state, as JSON."""
    from serving.registry_cli import show_model

    typer.echo(show_model(version))


@models_app.command("register")
@user_errors
def models_register(
    package: Annotated[Path, typer.Argument(help="Model package folder (kito export)")],
    checkpoint: Annotated[
        Path | None, typer.Option(help="The checkpoint.pt it was exported from (for retraining)")
    ] = None,
    promote: Annotated[bool, typer.Option(help="Also make it the champion")] = False,
) -> None:
    """Add a package to the registry as a candidate (its files go to the object store)."""
    from serving.registry_cli import register_package

    typer.echo(register_package(package, checkpoint, promote))


@models_app.command("promote")
@user_errors
def models_promote(
    version: Annotated[str, typer.Argument(help="name@version")],
    force: Annotated[
        bool, typer.Option(help="Promote although the promotion gate failed (needs --note)")
    ] = False,
    note: Annotated[str | None, typer.Option(help="Why (kept in the audit log)")] = None,
) -> None:
    """Make a model the champion; every running service swaps to it between requests."""
    from serving.registry_cli import promote_model

    typer.echo(promote_model(version, force, note))


@models_app.command("rollback")
@user_errors
def models_rollback(
    to: Annotated[str | None, typer.Option(help="A retired champion (default: previous)")] = None,
    reason: Annotated[str | None, typer.Option(help="Why (kept in the audit log)")] = None,
) -> None:
    """Retire the champion and restore the previous one."""
    from serving.registry_cli import rollback_model

    typer.echo(rollback_model(to, reason))


@models_app.command("shadow")
@user_errors
def models_shadow(
    version: Annotated[str | None, typer.Argument(help="name@version; omit with --stop")] = None,
    stop: Annotated[bool, typer.Option("--stop", help="Stop shadowing")] = False,
) -> None:
    """Run a model beside the champion on live inspections (it never decides a verdict)."""
    from serving.registry_cli import shadow_model

    if (version is None) != stop:
        raise typer.BadParameter("name a version, or pass --stop")
    typer.echo(shadow_model(version))


@models_app.command("holdout")
@user_errors
def models_holdout(
    source: Annotated[Path, typer.Option("--from", help="Data set folder or manifest")],
    split: Annotated[str | None, typer.Option(help="Only this split (default: all)")] = None,
) -> None:
    """Freeze the holdout ("golden set") of the data's taxonomy version, once: no training run
    may include its photos, and every retraining is judged on them."""
    from kito.retrain import freeze_holdout

    typer.echo(freeze_holdout(source, split))


@models_app.command("shadow-report")
@user_errors
def models_shadow_report(
    version: Annotated[str | None, typer.Option(help="Shadow version (default: current)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole report as JSON")] = False,
) -> None:
    """Where the shadow model and the champion disagreed on live inspections."""
    import json

    from serving.registry_cli import report_shadow

    r = report_shadow(version)
    if as_json:
        typer.echo(json.dumps(r, indent=2))
        return
    rate = "-" if r["agreement_rate"] is None else f"{r['agreement_rate']:.1%}"
    typer.echo(
        f"{r['version']} vs {', '.join(r['champion_versions']) or '-'}: {r['inspections']} "
        f"inspections, verdicts agree on {r['agreed']} ({rate}), {r['errors']} errors"
    )
    for v in r["verdicts"]:
        typer.echo(f"  champion {v['champion']:8} shadow {v['shadow']:8} {v['count']}")
    for name, c in r["per_class"].items():
        typer.echo(
            f"  {name:20} both {c['both']}, champion only {c['champion_only']}, "
            f"shadow only {c['shadow_only']}"
        )


@app.command("fsck")
@user_errors
def fsck_cmd(
    min_age: Annotated[
        float,
        typer.Option(min=0, help="Seconds: younger files may be uploads in flight, not orphans"),
    ] = 300.0,
    verify: Annotated[
        bool, typer.Option(help="Re-hash every stored photo (reads them all)")
    ] = True,
) -> None:
    """Check that the database and the photo store agree: missing, corrupt or orphan photos,
    inspections without photos or verdict, payouts without outbox. Exit 1 on problems."""
    from serving.db.cli import check_consistency

    report = check_consistency(min_age_s=min_age, verify=verify)
    for line in report.lines():
        typer.echo(line)
    if not report.ok:
        raise typer.Exit(1)


def main() -> None:
    app(prog_name="kito")


if __name__ == "__main__":
    sys.exit(main())
