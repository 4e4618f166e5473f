"""The two web pages: /app for artisans (phone-first) and /qc for the QC desk, with their assets.

Plain HTML, CSS and JavaScript modules under serving/web, no build step. The pages hold no data:
they call the JSON API with the token the user typed in (kept in the browser's localStorage).
The artisan page is installable and opens offline: /app.webmanifest and the service worker
/app-sw.js (served from the root so that its scope can cover /app).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from qc_model.catalog import Design
from qc_model.reason_messages import page_words

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
# no-cache: revalidate on every load, so a deployed fix reaches phones at once.
_REVALIDATE = {"Cache-Control": "no-cache"}

router = APIRouter(include_in_schema=False)


def _page(name: str) -> FileResponse:
    return FileResponse(WEB_DIR / name, media_type="text/html", headers=_REVALIDATE)


@router.get("/app")
def artisan_page() -> FileResponse:
    return _page("app.html")


@router.get("/qc")
def qc_page() -> FileResponse:
    return _page("qc.html")


@router.get("/app-sw.js")
def service_worker() -> FileResponse:
    # Under /static it could only control /static/; from the root it may take scope /app.
    return FileResponse(WEB_DIR / "app-sw.js", media_type="text/javascript", headers=_REVALIDATE)


@router.get("/app.webmanifest")
def manifest() -> FileResponse:
    return FileResponse(
        WEB_DIR / "app.webmanifest", media_type="application/manifest+json", headers=_REVALIDATE
    )


@router.get("/favicon.ico")
def favicon() -> FileResponse:
    return FileResponse(
        WEB_DIR / "icons" / "favicon.ico",
        media_type="image/x-icon",
        headers={"Cache-Control": "max-age=86400"},
    )


def design_words(catalog: dict[str, Design]) -> dict[str, dict[str, Any]]:
    """Each design's name per language and its piece type (for "the bracelet ...")."""
    return {
        d.id: {"en": d.name_in("en"), "sw": d.name_in("sw"), "type": d.piece_type}
        for d in catalog.values()
    }


@router.get("/app/words.json")
def words(request: Request) -> JSONResponse:
    """The artisan page's reason phrases (qc_model.reason_messages) and design names. Public:
    nothing in it is secret, and the page needs it before sign-in to open offline."""
    body = {"phrases": page_words(), "designs": design_words(request.app.state.catalog)}
    return JSONResponse(body, headers=_REVALIDATE)


def mount_web(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=WEB_DIR / "static"), name="static")
    app.mount("/icons", StaticFiles(directory=WEB_DIR / "icons"), name="icons")
