"""`kito` command line. Each command imports its implementation inside the function body, so
`kito --help` stays fast and `kito serve` never pulls in torch.

One module per command group; this file only puts them together, in the order `kito --help`
lists them."""

from __future__ import annotations

import sys

import typer

from kito.cli import database, model, registry, service
from kito.cli.anomaly import anomaly_app
from kito.cli.catalog import catalog_app
from kito.cli.common import user_errors
from kito.cli.data import data_app
from kito.cli.identity import identity_app
from kito.cli.surface import surface_app

__all__ = ["app", "main", "user_errors"]

app = typer.Typer(
    help="Kito QC: quality control for handmade jewelry from phone photos.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# Top-level commands: train, eval, export, quantize, repack, thresholds, serve, demo, retrain, fsck.
for group in (model, service, registry, database):
    app.add_typer(group.commands)
app.add_typer(data_app, name="data", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog", no_args_is_help=True)
app.add_typer(database.db_app, name="db", no_args_is_help=True)
app.add_typer(database.users_app, name="users", no_args_is_help=True)
app.add_typer(database.payouts_app, name="payouts", no_args_is_help=True)
app.add_typer(registry.models_app, name="models", no_args_is_help=True)
app.add_typer(surface_app, name="surface", no_args_is_help=True)
app.add_typer(anomaly_app, name="anomaly", no_args_is_help=True)
app.add_typer(identity_app, name="identity", no_args_is_help=True)


def main() -> None:
    app(prog_name="kito")


if __name__ == "__main__":
    sys.exit(main())
