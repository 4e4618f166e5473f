"""The artisan page on a 390x844 phone: sign in, pick order and piece, photograph, send (shrunk
on the phone, with progress and an idempotency key), read the verdict, retake in English or
Swahili, see the order's payout status."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from live_server import LiveServer
from photo_samples import jpeg, jpeg_rotated_exif
from playwright.sync_api import Page, Route, expect
from scripted_inspector import ScriptedInspector
from sqlalchemy import select
from web_helpers import HOOP, get_order, make_order, sign_in_app

from qc_model.messages import retake_message
from serving.db.models import Inspection

pytestmark = pytest.mark.browser
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def _stored(live: LiveServer, piece_id: str) -> list[Inspection]:
    with live.app.state.sessionmaker() as s:
        return list(s.scalars(select(Inspection).where(Inspection.piece_id == piece_id)))


def _watch_progress(page: Page) -> None:
    """Record every text the progress label shows, to check the upload reported progress."""
    page.evaluate(
        """() => {
          window.__progress = [];
          const label = document.querySelector('#progress-label');
          new MutationObserver(() => window.__progress.push(label.textContent))
            .observe(label, {childList: true, characterData: true, subtree: true});
        }"""
    )


def test_phone_upload_shrinks_a_large_photo_and_shows_verdict_and_payout(
    live: LiveServer, phone: Page, scripted: ScriptedInspector, tmp_path: Path
) -> None:
    artisan_id, token = live.user("artisan", "Wanjiru")
    _, qc = live.user("qc", "Njeri")
    order = make_order(live, qc, artisan_id, [("P1", HOOP, 45000), ("P2", HOOP, 45000)])
    # 4000x3000 stored sideways with EXIF orientation 6, as phones write them.
    big = tmp_path / "IMG_0001.jpg"
    big.write_bytes(jpeg_rotated_exif(4000, 3000))

    sign_in_app(phone, live, token)
    expect(phone.locator("#hello")).to_have_text("Hello, Wanjiru")
    phone.get_by_label("Order", exact=True).select_option(order["id"])
    phone.locator("#piece-cards [data-piece='P2']").click()
    phone.set_input_files("#photo", big)
    # Shrunk on the phone to 2048 px on the long side, upright.
    expect(phone.locator("#preview-caption")).to_contain_text("1536 × 2048 px")
    _watch_progress(phone)
    phone.get_by_role("button", name="Send photo").click()

    expect(phone.locator("#verdict")).to_have_text("Accepted")
    progress = phone.evaluate("window.__progress")
    assert any(t.startswith("Sending") for t in progress), progress
    assert "Checking the photo…" in progress, progress

    # The server got a JPEG no larger than 2048 px, upright, once, with a random idempotency key.
    (row,) = _stored(live, "P2")
    assert (row.photos[0].width, row.photos[0].height) == (1536, 2048)
    assert row.photos[0].media_type == "image/jpeg"
    assert row.photos[0].byte_size < len(big.read_bytes())
    assert row.order_id == order["id"] and row.design_id == HOOP
    assert row.idempotency_key and UUID.match(row.idempotency_key)
    decoded = scripted.calls[-1][0][0]
    assert decoded.original_size == (1536, 2048)

    # Everything fits the phone's width: no sideways scrolling at 390 px.
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390

    # The order's payout status: one piece still has no photo, so nothing is paid yet.
    expect(phone.locator("#order-status")).to_contain_text("Open")
    expect(phone.locator("#payout-status")).to_contain_text("Not paid yet")
    expect(phone.locator("#piece-cards [data-piece='P1']")).to_contain_text("Needs a photo")
    fresh = get_order(live, token, order["id"])
    p2 = next(p for p in fresh["pieces"] if p["piece_id"] == "P2")
    assert p2["latest_inspection_id"] == row.id


def test_retake_message_in_english_then_swahili_then_a_new_photo(
    live: LiveServer, phone: Page, scripted: ScriptedInspector
) -> None:
    artisan_id, token = live.user("artisan", "Akinyi")
    _, qc = live.user("qc", "Njeri")
    order = make_order(live, qc, artisan_id, [("R1", HOOP, 30000)])
    scripted.verdict = "retake"

    sign_in_app(phone, live, token)
    phone.get_by_label("Order", exact=True).select_option(order["id"])
    phone.set_input_files("#photo", files=[_file("blurry.jpg")])
    phone.get_by_role("button", name="Send photo").click()

    expect(phone.locator("#verdict")).to_have_text("Please take the photo again")
    expect(phone.locator("#reasons")).to_have_text(retake_message("blurry", "en"))

    phone.get_by_role("button", name="Kiswahili").click()
    expect(phone.locator("#reasons")).to_have_text(retake_message("blurry", "sw"))
    expect(phone.locator("#verdict")).to_have_text("Tafadhali piga picha tena")
    expect(phone.get_by_role("button", name="Kiswahili")).to_have_attribute("aria-pressed", "true")
    # The piece's held reason follows the language too.
    reason = phone.locator("#piece-cards [data-piece='R1'] .card-why")
    expect(reason).to_have_text(f"Piga picha tena: {retake_message('blurry', 'sw')}")
    assert phone.evaluate("document.documentElement.lang") == "sw"

    # The retake button opens the camera again; the new photo passes.
    scripted.verdict = "pass"
    with phone.expect_file_chooser() as chooser:
        phone.get_by_role("button", name="Piga picha mpya").click()
    chooser.value.set_files(files=[_file("sharp.jpg")])
    phone.get_by_role("button", name="Tuma picha").click()
    expect(phone.locator("#verdict")).to_have_text("Imekubaliwa")
    assert sorted(str(r.verdict) for r in _stored(live, "R1")) == ["pass", "retake"]

    # The language is remembered on this phone.
    phone.reload()
    expect(phone.locator("#work")).to_be_visible()
    expect(phone.locator("#photo-label")).to_have_text("Piga picha")


def test_dropped_connection_retry_sends_the_same_key_and_inspects_once(
    live: LiveServer, phone: Page, scripted: ScriptedInspector
) -> None:
    artisan_id, token = live.user("artisan", "Chebet")
    _, qc = live.user("qc", "Njeri")
    order = make_order(live, qc, artisan_id, [("D1", HOOP, 30000)])
    keys: list[str] = []
    tapped: list[bool] = []

    def drop_until_tapped(route: Route) -> None:
        keys.append(route.request.headers["idempotency-key"])
        if len(keys) == 1:
            # The server receives and inspects the photo; the answer is lost on the way back.
            route.fetch()
            route.abort("connectionreset")
        elif not tapped:
            route.abort("connectionreset")  # the page's own retries find no network either
        else:
            route.continue_()

    phone.route("**/api/v1/inspections", drop_until_tapped)
    sign_in_app(phone, live, token)
    phone.get_by_label("Order", exact=True).select_option(order["id"])
    phone.set_input_files("#photo", files=[_file("d1.jpg")])
    phone.get_by_role("button", name="Send photo").click()
    expect(phone.locator("#status")).to_contain_text("The connection dropped")
    tapped.append(True)
    phone.get_by_role("button", name="Try again").click()
    # A tap while a retry of the page's own is on the way is not lost: that one is sent again.
    expect(phone.locator("#verdict")).to_have_text("Accepted", timeout=30_000)

    assert len(keys) >= 2 and set(keys) == {keys[0]} and UUID.match(keys[0])
    assert len(_stored(live, "D1")) == 1  # the retry was answered from the first inspection
    assert len(scripted.calls) == 1


def test_sign_in_refuses_a_wrong_token_and_a_qc_token(live: LiveServer, phone: Page) -> None:
    _, qc = live.user("qc", "Njeri")
    phone.goto(f"{live.url}/app")
    phone.get_by_label("Your access code").fill("kito_not-a-token")
    phone.get_by_role("button", name="Sign in").click()
    expect(phone.locator("#signin-error")).to_have_text(
        "This code is not valid. Check it and try again."
    )
    phone.get_by_label("Your access code").fill(qc)
    phone.get_by_role("button", name="Sign in").click()
    expect(phone.locator("#signin-error")).to_contain_text("This page is for artisans")
    expect(phone.locator("#work")).to_be_hidden()
    assert phone.evaluate("localStorage.getItem('kito.app.token')") is None


def _file(name: str) -> dict[str, object]:
    return {"name": name, "mimeType": "image/jpeg", "buffer": jpeg(1600, 1200)}
