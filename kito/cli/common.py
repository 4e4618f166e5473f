"""What every command group shares: the one-line user errors and the
options several commands take. Nothing heavy is imported here."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

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


def one_blas_thread() -> None:
    """numpy's OpenBLAS on one thread in the service, as OpenCV and onnxruntime are
    (SERVICE_THREADS_PER_INSPECTION): concurrent requests already use the cores, and on a busy
    2-core VM OpenBLAS's threads spinning on the anomaly search's small products cost 3 to 15
    times its CPU (docs/BENCHMARKS.md, "Anomaly model"). Read by OpenBLAS when numpy loads, so
    called before anything imports numpy; a value set in the environment wins."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


CatalogOpt = Annotated[
    Path | None,
    typer.Option(help="Design catalog folder (default: the bundled datasets/catalog)."),
]


def catalog_dir(catalog: Path | None) -> Path:
    from qc_model.catalog import default_catalog_dir

    return catalog or default_catalog_dir()


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
