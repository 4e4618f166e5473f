"""The service database from the command line: `kito db upgrade`, `kito users create`,
`kito payouts dispatch` and `kito fsck`."""

from __future__ import annotations

from typing import Annotated

import typer

from kito.cli.common import user_errors

# Commands at the top level of `kito` (merged into the root app by kito/cli/__init__.py).
commands = typer.Typer()

db_app = typer.Typer(help="The service database (SQLite or PostgreSQL, from KITO_DATABASE_URL).")
users_app = typer.Typer(help="Service users and their API tokens.")
payouts_app = typer.Typer(help="Payouts: deliver them to the payment webhook.")


@db_app.command("upgrade")
@user_errors
def db_upgrade() -> None:
    """Apply the schema migrations (the service also does this at start)."""
    from serving.db.migrate import upgrade_database

    typer.echo(upgrade_database())


@users_app.command("create")
@user_errors
def users_create(
    name: Annotated[str, typer.Option(help="Display name")],
    role: Annotated[str, typer.Option(help="artisan, qc or admin")] = "artisan",
) -> None:
    """Create a user and print its API token once (it is stored only as a hash)."""
    from serving.core.users_cli import create_user_with_token

    user_id, token = create_user_with_token(name=name, role=role)
    typer.echo(f"user {user_id} ({role}) created; API token (shown once, keep it safe):")
    typer.echo(token)


@payouts_app.command("dispatch")
@user_errors
def payouts_dispatch(
    once: Annotated[bool, typer.Option("--once", help="One pass, then exit")] = False,
) -> None:
    """POST due payouts to KITO_PAYOUT_WEBHOOK_URL, retrying with backoff until delivered."""
    from serving.orders.payouts_cli import dispatch_payouts

    dispatch_payouts(once=once, echo=typer.echo)


@commands.command("fsck")
@user_errors
def fsck_cmd(
    min_age: Annotated[
        float,
        typer.Option(min=0, help="Seconds: younger files may be uploads in flight, not orphans"),
    ] = 300.0,
    verify: Annotated[
        bool, typer.Option(help="Re-hash every stored photo (reads them all)")
    ] = True,
    repair: Annotated[
        bool,
        typer.Option(
            help="First delete orphan photo files and dead writers' temporary files older"
            " than --min-age (safe beside a running service)"
        ),
    ] = False,
) -> None:
    """Check that the database and the photo store agree: missing, corrupt or orphan photos,
    inspections without photos or verdict, payouts without outbox. Exit 1 on problems."""
    from serving.store.fsck_cli import check_consistency

    report = check_consistency(min_age_s=min_age, verify=verify, repair=repair)
    for line in report.lines():
        typer.echo(line)
    if not report.ok:
        raise typer.Exit(1)
