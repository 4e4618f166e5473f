"""The two web pages: /app for artisans (phone-first) and /qc for the QC desk, with their assets.

Plain HTML, CSS and JavaScript modules under serving/web, no build step. The pages hold no data:
they call the JSON API with the token the user typed in (kept in the browser's localStorage).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

WEB_DIR = Path(__file__).resolve().parent.parent / "web"

router = APIRouter(include_in_schema=False)


def _page(name: str) -> FileResponse:
    # no-cache: revalidate on every load, so a deployed fix reaches phones at once.
    return FileResponse(
        WEB_DIR / name, media_type="text/html", headers={"Cache-Control": "no-cache"}
    )


@router.get("/app")
def artisan_page() -> FileResponse:
    return _page("app.html")


@router.get("/qc")
def qc_page() -> FileResponse:
    return _page("qc.html")


def mount_web(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=WEB_DIR / "static"), name="static")
