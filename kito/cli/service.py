"""`kito serve` and `kito demo`: the inspection service (never imports torch)."""

from __future__ import annotations

from typing import Annotated

import typer

from kito.cli.common import one_blas_thread, user_errors

# Commands at the top level of `kito` (merged into the root app by kito/cli/__init__.py).
commands = typer.Typer()


@commands.command("serve")
@user_errors
def serve(
    host: Annotated[
        str | None, typer.Option(help="Bind address (default KITO_HOST, 127.0.0.1)")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default KITO_PORT, 8000)")] = None,
) -> None:
    """Run the inspection service (FastAPI under uvicorn); settings from KITO_* variables."""
    one_blas_thread()
    import uvicorn

    from serving.app import create_app
    from serving.core.settings import load_settings

    overrides = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    settings = load_settings(**overrides)
    from kito.ports import ensure_port_free

    ensure_port_free(settings.host, settings.port)
    app = create_app(settings)
    typer.echo(f"Kito QC on http://{settings.host}:{settings.port} (API docs at /docs)")
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        **settings.uvicorn_proxy_options,  # type: ignore[arg-type]
    )


@commands.command("demo")
@user_errors
def demo(
    port: Annotated[int | None, typer.Option(help="Port (default KITO_PORT, 8000)")] = None,
    serve_forever: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Keep serving after seeding")
    ] = True,
) -> None:
    """Start the service with the bundled model, seed users, an order and three inspections
    (pass, fail, retake), print the tokens and the page URLs, and keep serving."""
    one_blas_thread()
    from kito.demo import run_demo
    from serving.core.settings import load_settings

    settings = load_settings(**({"port": port} if port is not None else {}))
    run_demo(settings, serve_forever=serve_forever, echo=typer.echo)
