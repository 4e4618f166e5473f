"""Reused photos by artisan on the QC desk (admins only): the panel lists one artisan's photos
held as reused (GET /api/v1/users/{id}/photo-matches) with the totals, QC's decisions and each
match beside the earlier photo and whose it was, in English and Kiswahili; QC staff never see it."""

from __future__ import annotations

import pytest
from live_server import LiveServer
from playwright.sync_api import Page, Route, expect
from scripted_inspector import ScriptedInspector
from test_web_qc_words import _catalogue, _english_on_screen, _english_words
from web_helpers import expect_loaded, hold_reused_photos, sign_in_qc, snap

pytestmark = pytest.mark.browser


def _one_per_page(route: Route) -> None:
    """Ask for one held inspection at a time, so that two need "Show more"."""
    route.continue_(url=route.request.url.replace("limit=20", "limit=1"))


def test_admin_lists_an_artisans_reused_photos_beside_the_earlier_ones(
    live: LiveServer, desk: Page, scripted: ScriptedInspector
) -> None:
    _, qc = live.user("qc", "Njeri")
    held = hold_reused_photos(live, qc, scripted, "fedcba9876543210")
    _, admin = live.user("admin", "Amina")
    sign_in_qc(desk, live, admin)
    desk.route("**/photo-matches?*", _one_per_page)

    desk.get_by_role("button", name="Reused photos by artisan").click()
    panel = desk.locator("#matches")
    expect(desk.locator("#desk")).to_be_hidden()
    expect(panel.get_by_role("heading", name="Reused photos by artisan")).to_be_visible()
    panel.get_by_label("Show the photos of").select_option(str(held["artisan_id"]))
    expect(panel.get_by_role("heading", name="Photos of Zawadi held as reused")).to_be_visible()
    expect(panel.locator(".matches-totals li")).to_have_text(
        ["Held in all: 2", "Still waiting for QC: 1", "Rejected by QC: 1"]
    )
    # Newest first: M2, still open, matches N1 (Halima's) and M1 (Zawadi's own).
    items = panel.locator(".held")
    expect(items).to_have_count(1)
    more = panel.get_by_role("button", name="Show more (1 of 2 shown)")
    newest = items.nth(0)
    expect(newest.get_by_role("heading")).to_contain_text(f"Piece M2 · order {held['order']}")
    expect(newest).to_contain_text("Waiting for QC")
    pairs = newest.locator(".reused-pair")
    expect(pairs).to_have_count(2)
    other = pairs.filter(has_text="Halima")
    expect(other).to_contain_text(
        f"Earlier photo sent by Halima (another artisan) · order {held['earlier_order']}, "
        "piece N1 · 0 of 64 bits differ"
    )
    expect(pairs.filter(has_text="Zawadi (same artisan)")).to_contain_text("piece M1")
    imgs = other.locator("img.photo-img")
    expect(imgs.nth(0)).to_have_attribute("alt", "Photo 1 of M2")
    expect(imgs.nth(1)).to_have_attribute("alt", "Earlier photo 1 of N1")
    expect_loaded(imgs.nth(0))
    expect_loaded(imgs.nth(1))

    # The next page: M1, which QC rejected, with its note.
    more.click()
    expect(items).to_have_count(2)
    expect(more).to_be_hidden()
    decided = items.nth(1)
    expect(decided.get_by_role("heading")).to_contain_text("Piece M1")
    expect(decided.locator(".held-decision")).to_contain_text("Rejected by Njeri")
    expect(decided.locator(".held-note")).to_have_text("Picha ile ile ya N1.")
    expect(decided.locator(".reused-pair")).to_contain_text("Halima (another artisan)")
    for img in decided.locator("img.photo-img").all():
        expect_loaded(img)
    snap(desk, "qc-matches")

    # Kiswahili: the panel is drawn again, no English word of the desk left, images kept.
    english = _english_words(_catalogue(desk))
    desk.get_by_role("button", name="Kiswahili").click()
    expect(panel.get_by_role("heading", name="Picha zilizorudiwa za kila fundi")).to_be_visible()
    expect(panel.locator(".matches-totals li").first).to_have_text("Zilizozuiliwa kwa jumla: 2")
    expect(newest).to_contain_text("Bado kinasubiri QC")
    expect(decided.locator(".held-decision")).to_contain_text("Kimekataliwa na Njeri")
    expect(other).to_contain_text("Picha ya awali iliyotumwa na Halima (fundi mwingine)")
    expect_loaded(other.locator("img.photo-img").nth(1))
    expect(panel.get_by_label("Onyesha picha za")).to_have_value(str(held["artisan_id"]))
    assert _english_on_screen(desk, english) == []
    snap(desk, "qc-matches-sw")

    # Back to the queue.
    desk.get_by_role("button", name="Rudi kwenye foleni").click()
    expect(panel).to_be_hidden()
    expect(desk.locator("#desk")).to_be_visible()


def test_qc_staff_do_not_see_reused_photos_by_artisan(live: LiveServer, desk: Page) -> None:
    _, qc = live.user("qc", "Baraka")
    artisan_id, _ = live.user("artisan", "Achieng")
    sign_in_qc(desk, live, qc)
    expect(desk.locator("#queue-count")).not_to_be_empty()
    expect(desk.locator("#matches-open")).to_be_hidden()
    expect(desk.get_by_role("button", name="Reused photos by artisan")).to_have_count(0)
    with live.api(qc) as api:
        assert api.get(f"/api/v1/users/{artisan_id}/photo-matches").status_code == 403
