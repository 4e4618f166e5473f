"""`kito retrain` and `kito models ...`: the model registry, shadowing, promotion and the
retraining loop."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kito.cli.common import user_errors

# Commands at the top level of `kito` (merged into the root app by kito/cli/__init__.py).
commands = typer.Typer()

models_app = typer.Typer(help="The model registry: champion, shadow, candidates, promotion.")


@commands.command("retrain")
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


@models_app.command("list")
@user_errors
def models_list(
    state: Annotated[
        str | None, typer.Option(help="candidate, shadow, champion or retired")
    ] = None,
) -> None:
    """Every registered model package, newest first."""
    from serving.registry.registry_cli import list_models

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
    from serving.registry.registry_cli import show_model

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
    from serving.registry.registry_cli import register_package

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
    from serving.registry.registry_cli import promote_model

    typer.echo(promote_model(version, force, note))


@models_app.command("rollback")
@user_errors
def models_rollback(
    to: Annotated[str | None, typer.Option(help="A retired champion (default: previous)")] = None,
    reason: Annotated[str | None, typer.Option(help="Why (kept in the audit log)")] = None,
) -> None:
    """Retire the champion and restore the previous one."""
    from serving.registry.registry_cli import rollback_model

    typer.echo(rollback_model(to, reason))


@models_app.command("shadow")
@user_errors
def models_shadow(
    version: Annotated[str | None, typer.Argument(help="name@version; omit with --stop")] = None,
    stop: Annotated[bool, typer.Option("--stop", help="Stop shadowing")] = False,
) -> None:
    """Run a model beside the champion on live inspections (it never decides a verdict)."""
    from serving.registry.registry_cli import shadow_model

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

    from serving.registry.registry_cli import report_shadow

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
