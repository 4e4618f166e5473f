"""Browser tests: the real app under uvicorn (SQLite, scripted inspector) and Debian's chromium
driven by Playwright for Python. One server and one browser per session; each test gets a
fresh browser context (own localStorage) and makes its own users and orders."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from live_server import LiveServer, serve
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright
from scripted_inspector import ScriptedInspector

from serving.app import create_app
from serving.core.settings import Settings
from serving.inspection.pipeline import InspectorStatus

PHONE = {"width": 390, "height": 844}
SMALL_PHONE = {"width": 360, "height": 740}
DESK = {"width": 1366, "height": 900}
# Generous for a loaded 2-core CI machine; a passing run waits far less.
TIMEOUT_MS = 10_000
expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        # A failure, not a skip: a CI without the browser must not pass without testing the pages.
        pytest.fail(
            "chromium not found on PATH: the browser tests drive Debian's chromium "
            "(apt-get install -y chromium; .ci/run installs it). `playwright install` is not used.",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def browser(chromium_path: str) -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path)
        yield b
        b.close()


@pytest.fixture(scope="session")
def scripted() -> ScriptedInspector:
    return ScriptedInspector()


def _live(
    root: Path, template: Path, catalog_dir: Path, inspector: ScriptedInspector, **kw: Any
) -> AbstractContextManager[LiveServer]:
    shutil.copy(template, root / "kito.db")
    settings = Settings(
        data_dir=root / "data",
        database_url=f"sqlite:///{root / 'kito.db'}",
        model_dir=root / "no-model",
        catalog_dir=catalog_dir,
        migrate_on_start=False,
        # No random audit samples: each test knows which of its pieces reach the queue.
        audit_sample_rate=0.0,
        **kw,
    )
    app = create_app(settings, inspector_status=InspectorStatus(inspector, "scripted inspector"))
    return serve(app)


@pytest.fixture(scope="session")
def live(
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_template: Path,
    catalog_dir: Path,
    scripted: ScriptedInspector,
) -> Iterator[LiveServer]:
    """The app as deployed by default: an order is paid when its last piece is accepted."""
    root = tmp_path_factory.mktemp("web")
    with _live(root, sqlite_template, catalog_dir, scripted, auto_payout=True) as server:
        yield server


@pytest.fixture
def live_manual_payout(
    tmp_path: Path, sqlite_template: Path, catalog_dir: Path, scripted: ScriptedInspector
) -> Iterator[LiveServer]:
    """A second app where QC releases each payout by hand (KITO_AUTO_PAYOUT=false)."""
    with _live(tmp_path, sqlite_template, catalog_dir, scripted, auto_payout=False) as server:
        yield server


@pytest.fixture(autouse=True)
def _reset_inspector(scripted: ScriptedInspector) -> None:
    scripted.verdict = "pass"
    scripted.size_off_mm = None
    scripted.fingerprint = None
    scripted.design_check = None
    scripted.calls.clear()


@pytest.fixture
def phone(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A page in a phone-sized context (390x844, touch)."""
    shot = _screenshot_path(request, "phone")
    with _page(browser, PHONE, shot, is_mobile=True, has_touch=True, device_scale_factor=2) as page:
        yield page


@pytest.fixture
def small_phone(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A 360 px wide phone, the narrowest common Android screen."""
    shot = _screenshot_path(request, "phone360")
    kw: dict[str, Any] = {"is_mobile": True, "has_touch": True, "device_scale_factor": 2}
    with _page(browser, SMALL_PHONE, shot, **kw) as page:
        yield page


@pytest.fixture
def desk(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    with _page(browser, DESK, _screenshot_path(request, "desk")) as page:
        yield page


def artifacts_dir() -> Path:
    """Test-run artifacts (KITO_ARTIFACTS_DIR, default .artifacts/ in the repository, ignored)."""
    return Path(os.environ.get("KITO_ARTIFACTS_DIR", Path(__file__).parents[3] / ".artifacts"))


def _screenshot_path(request: pytest.FixtureRequest, kind: str) -> Path:
    """Where the page's last state is kept as a test-run artifact: one PNG per test and page."""
    root = artifacts_dir()
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    return root / "screenshots" / f"{name}-{kind}.png"


@contextmanager
def _page(
    browser: Browser, viewport: dict[str, int], screenshot: Path, **kw: Any
) -> Iterator[Page]:
    """A page in its own context (own localStorage); afterwards, keep a full-page screenshot
    of where the test left it, and fail on any uncaught script error or CSP violation.

    Answers with an error status are the API's business (the tests check what the page shows
    for them), so the browser's "Failed to load resource" lines are not counted.
    """
    context = browser.new_context(viewport=viewport, **kw)  # type: ignore[arg-type]
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))

    def console(msg: ConsoleMessage) -> None:
        if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
            errors.append(f"console: {msg.text}")

    page.on("console", console)
    try:
        yield page
    finally:
        try:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            context.close()
    assert not errors, errors
