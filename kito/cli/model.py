"""The model's life on the command line: `kito train`, `eval`, `export`, `quantize`, `repack`
and `thresholds`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kito.cli.common import JudgedOnlyOpt, WorkersOpt, user_errors

# Commands at the top level of `kito` (merged into the root app by kito/cli/__init__.py).
commands = typer.Typer()


@commands.command("train")
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


@commands.command("eval")
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
    if (
        package is not None
        and not (package / "package.json").is_file()
        and (package / "anomaly.json").is_file()
    ):  # an anomaly model alone (kito anomaly fit without --package)
        from training.anomaly.evaluate import evaluate_anomaly, summary_line

        a = evaluate_anomaly(package, manifest, out, split=split)["anomaly"]
        typer.echo(f"{split}: {summary_line(a)}; report {out / 'index.html'}")
        return
    if package is not None:
        s = evaluate_package(package, manifest, out, split=split, workers=workers).metrics
    else:
        assert checkpoint is not None
        s = evaluate(
            checkpoint, manifest, out, split=split, target_recall=target_recall, workers=workers
        ).metrics
    for line in summary_lines(s, split, out):
        typer.echo(line)
    if s.get("anomaly"):
        from training.anomaly.evaluate import summary_line

        typer.echo(f"  {summary_line(s['anomaly'])}")


@commands.command("export")
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


@commands.command("quantize")
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
    weight_bits: Annotated[
        int,
        typer.Option(
            min=7,
            max=8,
            help="7: runs alike on every CPU; 8: closer to FP32, made and served only on a CPU "
            "with VNNI",
        ),
    ] = 7,
) -> None:
    """FP32 package -> INT8 package, refused if it loses more than MAX_DROP of macro-F1."""
    from training.quantize import quantize_package

    q = quantize_package(
        package, calibration_manifest, out, max_drop=max_drop, fmt=fmt, weight_bits=weight_bits
    )
    r = q.metrics["int8"]
    typer.echo(
        f"wrote {out} ({r['format']}, {r['weight_bits']}-bit weights; macro-F1 "
        f"{r['macro_f1_fp32']:.4f} -> {r['macro_f1_int8']:.4f} on {r['validation_photos']} val "
        "photos, "
        f"ranges from {r['calibration_photos']} train photos; |Δp| mean "
        f"{r['mean_abs_dprob']:.4f}, max {r['max_abs_dprob']:.3f}; "
        f"{r['photos_crossing_a_threshold']} photos cross a threshold)"
    )
    if "design_references" in r:
        typer.echo(f"design references {r['design_references']}")


@commands.command("repack")
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


@commands.command("thresholds")
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
    from training.thresholds import rethreshold

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
