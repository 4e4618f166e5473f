"""The piece picker on a 360 px phone: one card per piece with what happened to it, the piece that
needs the artisan chosen first, no upload offered where none is wanted, and the payment named
for what happened ("payment sent" only once the payout was delivered)."""

from __future__ import annotations

import json

import pytest
from live_server import LiveServer
from playwright.sync_api import Page, Route, expect
from scripted_inspector import ScriptedInspector
from web_helpers import HOOP, get_order, make_order, pick_piece, sign_in_app, snap, upload

pytestmark = pytest.mark.browser


def test_cards_show_each_state_and_preselect_the_piece_that_needs_a_photo(
    live: LiveServer, small_phone: Page, scripted: ScriptedInspector
) -> None:
    page = small_phone
    artisan_id, token = live.user("artisan", "Wairimu")
    _, qc = live.user("qc", "Njeri")
    pieces = [(f"LONG-ORDER-NAME-2026-P{i}", HOOP, 20000) for i in range(1, 5)]
    order = make_order(live, qc, artisan_id, pieces, order_id="DEMO-20261207-101500")
    ids = [p[0] for p in pieces]
    for piece_id, verdict in zip(ids, ("pass", "review", "retake"), strict=False):
        scripted.verdict = verdict
        upload(live, token, order["id"], piece_id, HOOP)

    sign_in_app(page, live, token)
    cards = page.locator("#piece-cards .piece-card")
    expect(cards).to_have_count(4)
    states = ["Accepted", "Waiting for QC", "Needs a new photo", "Needs a photo"]
    for card, state in zip(ids, states, strict=True):
        expect(page.locator(f"#piece-cards [data-piece='{card}'] .card-state")).to_have_text(state)
    # The retake comes first: it is the first piece the artisan can do something about.
    expect(page.locator(f"[data-piece='{ids[2]}']")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#capture")).to_be_visible()
    # Nothing is cut off or scrolls sideways at 360 px.
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    clipped = page.evaluate(
        """() => [...document.querySelectorAll('#piece-cards .piece-card, #piece-cards span')]
             .filter((n) => n.scrollWidth > n.clientWidth + 1).map((n) => n.textContent)"""
    )
    assert clipped == []
    assert _order_label_fits(page)
    snap(page, "artisan-picker-360")

    # An accepted piece takes no photo.
    pick_piece(page, ids[0])
    expect(page.locator("#capture")).to_be_hidden()
    expect(page.locator("#no-upload")).to_have_text("This piece is accepted: no photo is needed.")
    pick_piece(page, ids[3])
    expect(page.locator("#capture")).to_be_visible()


def test_a_paid_order_offers_no_upload_and_says_whether_the_payment_was_sent(
    live: LiveServer, small_phone: Page, scripted: ScriptedInspector
) -> None:
    page = small_phone
    artisan_id, token = live.user("artisan", "Jeptoo")
    _, qc = live.user("qc", "Njeri")
    order = make_order(live, qc, artisan_id, [("PAID-1", HOOP, 20000)])
    upload(live, token, order["id"], "PAID-1", HOOP)  # passes: the order is complete, a payout made
    payout = get_order(live, token, order["id"])["payout"]
    assert payout is not None
    delivered = {"value": payout["status"] == "delivered"}

    def as_delivered_or_not(route: Route) -> None:
        # The page must follow the payout's own status, whichever the outbox reached.
        res = route.fetch()
        body = res.json()
        for o in body.get("data", [body]):
            if o.get("payout"):
                o["payout"]["status"] = "delivered" if delivered["value"] else "pending"
        route.fulfill(response=res, body=json.dumps(body))

    page.route("**/api/v1/orders*", as_delivered_or_not)
    delivered["value"] = False
    sign_in_app(page, live, token)
    page.get_by_label("Order", exact=True).select_option(order["id"])
    expect(page.locator("#capture")).to_be_hidden()
    expect(page.locator("#no-upload")).to_have_text(
        "Every piece of this order is accepted: no more photos are needed."
    )
    expect(page.locator("#payout-status")).to_contain_text("Payment pending")
    expect(page.locator("#order-status")).to_contain_text("Payment pending")
    assert "Payment sent" not in page.locator("main").inner_text()
    # The order picker fits the phone: its label is not cut off.
    assert _order_label_fits(page)
    expect(page.locator("#order option:checked")).to_have_text(f"{order['id']} · Paying")
    snap(page, "artisan-paid-pending")

    delivered["value"] = True
    page.reload()
    page.get_by_label("Order", exact=True).select_option(order["id"])
    expect(page.locator("#payout-status")).to_contain_text("Payment sent")
    page.get_by_role("button", name="Kiswahili").click()
    expect(page.locator("#payout-status")).to_contain_text("Malipo yametumwa")


def _order_label_fits(page: Page) -> bool:
    """Whether the chosen order's label fits its select (a select cuts long text silently):
    the text's width, the select's own padding and 24 px for its arrow, within the select."""
    need, have = page.locator("#order").evaluate(
        """s => {
          const ctx = document.createElement('canvas').getContext('2d');
          const cs = getComputedStyle(s);
          ctx.font = `${cs.fontSize} ${cs.fontFamily}`;
          const text = ctx.measureText(s.options[s.selectedIndex].text).width;
          const pad = parseFloat(cs.paddingLeft) + parseFloat(cs.paddingRight);
          return [text + pad + 24, s.clientWidth];
        }"""
    )
    return bool(need <= have)
