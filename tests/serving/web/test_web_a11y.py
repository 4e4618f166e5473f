"""Accessibility and weight of the pages: axe-core (npm package, run in the page) finds no
serious or critical violation in any state the tests reach; the artisan page's first load stays
under 100 KB on the wire."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import DESK, PHONE, TIMEOUT_MS, artifacts_dir
from live_server import LiveServer
from photo_samples import jpeg
from playwright.sync_api import Browser, BrowserContext, Page, expect
from scripted_inspector import ScriptedInspector
from web_helpers import (
    HOOP,
    expect_loaded,
    hold_reused_photos,
    make_order,
    pick_piece,
    sign_in_app,
    sign_in_qc,
    upload,
)

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[3]
# Where `npm install --no-save --prefix .artifacts/npm axe-core@4` (or a plain `npm install`
# at the root) puts it; KITO_AXE_JS names another copy.
AXE_PLACES = (
    ROOT / "node_modules" / "axe-core" / "axe.min.js",
    ROOT / ".artifacts" / "npm" / "node_modules" / "axe-core" / "axe.min.js",
)
FIRST_LOAD_BUDGET = 100 * 1024


@pytest.fixture(scope="module")
def axe_js() -> Path:
    env = os.environ.get("KITO_AXE_JS")
    for path in ([Path(env)] if env else []) + list(AXE_PLACES):
        if path.is_file():
            return path
    hint = "npm install --no-save --prefix .artifacts/npm axe-core@4"
    npm = "" if shutil.which("npm") else "; npm is missing too"
    pytest.skip(f"axe-core is not installed (npm package: `{hint}`{npm})")


@pytest.fixture
def a11y_context(browser: Browser) -> Iterator[BrowserContext]:
    # The pages' CSP forbids inline scripts, which is how Playwright injects axe: bypass it here.
    context = browser.new_context(bypass_csp=True)
    context.set_default_timeout(TIMEOUT_MS)
    yield context
    context.close()


def _axe(page: Page, axe_js: Path, name: str) -> None:
    """Run axe-core on the page as it is; fail on serious or critical violations."""
    page.add_script_tag(path=str(axe_js))
    result: dict[str, Any] = page.evaluate(
        "async () => await axe.run(document, {resultTypes: ['violations']})"
    )
    assert len(result["passes"]) > 10, "axe-core did not check the page"
    out = artifacts_dir() / "axe" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result["violations"], indent=1))
    page.screenshot(path=str(out.with_suffix(".png")), full_page=True)
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not bad, f"{name}: {bad}"


def test_artisan_page_has_no_serious_accessibility_violation(
    live: LiveServer, a11y_context: BrowserContext, axe_js: Path, scripted: ScriptedInspector
) -> None:
    page = a11y_context.new_page()
    page.set_viewport_size(PHONE)
    artisan_id, token = live.user("artisan", "Auma")
    _, qc = live.user("qc", "Njeri")
    order = make_order(live, qc, artisan_id, [("X1", HOOP, 30000), ("X2", HOOP, 30000)])
    page.goto(f"{live.url}/app")
    expect(page.locator("#signin")).to_be_visible()
    _axe(page, axe_js, "artisan-signin")
    sign_in_app(page, live, token)
    page.get_by_label("Order", exact=True).select_option(order["id"])
    scripted.verdict = "retake"
    pick_piece(page, "X1")
    page.set_input_files(
        "#photo", files=[{"name": "x.jpg", "mimeType": "image/jpeg", "buffer": jpeg(1200, 900)}]
    )
    page.get_by_role("button", name="Send photo").click()
    expect(page.locator("#verdict")).to_have_text("Please take the photo again")
    _axe(page, axe_js, "artisan-retake-en")
    page.get_by_role("button", name="Kiswahili").click()
    page.context.set_offline(True)
    expect(page.locator("#offline")).to_be_visible()
    _axe(page, axe_js, "artisan-retake-sw-offline")
    page.context.set_offline(False)


def test_qc_desk_has_no_serious_accessibility_violation(
    live: LiveServer, a11y_context: BrowserContext, axe_js: Path, scripted: ScriptedInspector
) -> None:
    page = a11y_context.new_page()
    page.set_viewport_size(DESK)
    _, qc = live.user("qc", "Njeri")
    artisan_id, artisan = live.user("artisan", "Kerubo")
    order = make_order(live, qc, artisan_id, [("Y1", HOOP, 30000)])
    scripted.verdict = "fail"
    upload(live, artisan, order["id"], "Y1", HOOP)
    page.goto(f"{live.url}/qc")
    expect(page.locator("#signin")).to_be_visible()
    _axe(page, axe_js, "qc-signin")
    sign_in_qc(page, live, qc)
    expect(page.locator("#item-title")).not_to_be_empty()
    _axe(page, axe_js, "qc-item")
    page.keyboard.press("r")
    expect(page.locator("#decide-error")).not_to_be_empty()
    _axe(page, axe_js, "qc-reject-needs-label")
    page.get_by_role("button", name="Kiswahili").click()
    expect(page.locator("html")).to_have_attribute("lang", "sw")
    _axe(page, axe_js, "qc-reject-needs-label-sw")


def test_reused_photos_by_artisan_has_no_serious_accessibility_violation(
    live: LiveServer, a11y_context: BrowserContext, axe_js: Path, scripted: ScriptedInspector
) -> None:
    page = a11y_context.new_page()
    page.set_viewport_size(DESK)
    _, qc = live.user("qc", "Njeri")
    held = hold_reused_photos(live, qc, scripted, "5a5a5a5a5a5a5a5a")
    _, admin = live.user("admin", "Amina")
    sign_in_qc(page, live, admin)
    page.get_by_role("button", name="Reused photos by artisan").click()
    page.get_by_label("Show the photos of").select_option(str(held["artisan_id"]))
    expect(page.locator("#matches .held")).to_have_count(2)
    for img in page.locator("#matches img.photo-img").all():
        expect_loaded(img)
    _axe(page, axe_js, "qc-matches")
    page.get_by_role("button", name="Kiswahili").click()
    expect(page.locator("#matches .held-decision").first).to_have_text("Bado kinasubiri QC")
    _axe(page, axe_js, "qc-matches-sw")


def test_artisan_first_load_is_under_100_kb(live: LiveServer, browser: Browser) -> None:
    context = browser.new_context(viewport=PHONE, service_workers="block")
    try:
        page = context.new_page()
        page.goto(f"{live.url}/app")
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        entries: list[dict[str, Any]] = page.evaluate(
            """() => performance.getEntriesByType('navigation')
                 .concat(performance.getEntriesByType('resource'))
                 .map((e) => ({name: e.name, bytes: e.transferSize, body: e.encodedBodySize}))"""
        )
    finally:
        context.close()
    total = sum(e["bytes"] for e in entries)
    out = artifacts_dir() / "first-load.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"total_bytes": total, "entries": entries}, indent=1))
    names = {e["name"].removeprefix(live.url) for e in entries}
    assert {"/app", "/static/app.js", "/app/words.json"} <= names, names
    assert all(e["bytes"] > 0 for e in entries), entries  # nothing came from a cache
    assert total <= FIRST_LOAD_BUDGET, f"first load {total} B > {FIRST_LOAD_BUDGET} B: {entries}"
