"""Offline-first capture on the phone: the page opens without a network (service worker), a photo
taken offline waits in IndexedDB with its idempotency key, survives a reload, and is sent once
when the network returns."""

from __future__ import annotations

import pytest
from live_server import LiveServer
from photo_samples import jpeg
from playwright.sync_api import Page, Route, expect
from scripted_inspector import ScriptedInspector
from sqlalchemy import select
from web_helpers import HOOP, make_order, pick_piece, sign_in_app, snap

from serving.db.models import Inspection

pytestmark = pytest.mark.browser


def _stored(live: LiveServer, piece_id: str) -> list[Inspection]:
    with live.app.state.sessionmaker() as s:
        return list(s.scalars(select(Inspection).where(Inspection.piece_id == piece_id)))


def _queue(page: Page) -> list[dict[str, object]]:
    """The photo queue as IndexedDB holds it (blobs left out)."""
    return page.evaluate(
        """async () => {
          const q = await import('/static/photo-queue.js');
          return (await q.all()).map(({blob, token, ...r}) => ({...r, size: blob ? blob.size : 0}));
        }"""
    )


def test_photo_taken_offline_survives_a_reload_and_is_sent_once_online(
    live: LiveServer, phone: Page, scripted: ScriptedInspector
) -> None:
    artisan_id, token = live.user("artisan", "Nafula")
    _, qc = live.user("qc", "Njeri")
    order = make_order(live, qc, artisan_id, [("F1", HOOP, 30000), ("F2", HOOP, 30000)])
    sign_in_app(phone, live, token)
    # The service worker has the page's files before the network goes.
    phone.evaluate("navigator.serviceWorker.ready.then(() => true)")
    phone.wait_for_function("navigator.serviceWorker.controller !== null")

    phone.context.set_offline(True)
    pick_piece(phone, "F2")
    # A large photo: shrunk on the phone before it is queued.
    phone.set_input_files(
        "#photo", files=[{"name": "f2.jpg", "mimeType": "image/jpeg", "buffer": jpeg(3000, 2250)}]
    )
    expect(phone.locator("#preview-caption")).to_contain_text("2048 × 1536 px")
    phone.get_by_role("button", name="Send photo").click()
    expect(phone.locator("#status")).to_contain_text("No network")
    expect(phone.locator("#offline")).to_be_visible()
    expect(phone.locator("#outbox li[data-piece='F2']")).to_contain_text("Waiting for network")
    expect(phone.locator("#piece-cards [data-piece='F2']")).to_contain_text("Photo waiting to send")
    (queued,) = _queue(phone)
    assert queued["state"] == "waiting" and 0 < int(queued["size"]) < 600_000  # type: ignore[call-overload]
    key = queued["key"]
    snap(phone, "artisan-offline-queued")

    # Reload with no network: the service worker serves the page, the photo is still queued.
    phone.reload()
    expect(phone.locator("#work")).to_be_visible()
    expect(phone.locator("#outbox li[data-piece='F2']")).to_contain_text("Waiting for network")
    expect(phone.locator("#offline")).to_be_visible()
    assert _stored(live, "F2") == [] and scripted.calls == []

    # The network returns: the queue is sent, once, with the key it got when it was taken.
    phone.context.set_offline(False)
    # The 'online' event can come before the network really is back (seen in CI): the page
    # then sends again by itself a few seconds later.
    expect(phone.locator("#verdict")).to_have_text("Accepted", timeout=20_000)
    expect(phone.locator("#outbox li[data-piece='F2']")).to_contain_text("Sent")
    expect(phone.locator("#piece-cards [data-piece='F2']")).to_contain_text("Accepted")
    snap(phone, "artisan-back-online-sent")
    # Whatever else wakes up (background sync, another 'online' event) finds nothing to send.
    phone.reload()
    expect(phone.locator("#work")).to_be_visible()
    phone.wait_for_timeout(500)
    (row,) = _stored(live, "F2")
    assert row.idempotency_key == key
    assert (row.photos[0].width, row.photos[0].height) == (2048, 1536)
    assert len(scripted.calls) == 1
    assert [r["state"] for r in _queue(phone)] == ["sent"]
    assert order["id"] == row.order_id


def test_a_dropped_send_is_sent_again_by_itself_while_online(
    live: LiveServer, phone: Page, scripted: ScriptedInspector
) -> None:
    """The phone says it is online but the upload fails (the network is not really back, or
    the answer is lost): the page sends again by itself, with the same key, and shows the
    verdict without the artisan tapping anything."""
    artisan_id, token = live.user("artisan", "Akinyi")
    _, qc = live.user("qc", "Njeri")
    make_order(live, qc, artisan_id, [("A1", HOOP, 30000)])
    keys: list[str] = []

    def drop_first(route: Route) -> None:
        keys.append(route.request.headers["idempotency-key"])
        if len(keys) == 1:
            route.abort("internetdisconnected")
        else:
            route.continue_()

    phone.route("**/api/v1/inspections", drop_first)
    sign_in_app(phone, live, token)
    pick_piece(phone, "A1")
    phone.set_input_files(
        "#photo", files=[{"name": "a1.jpg", "mimeType": "image/jpeg", "buffer": jpeg(1600, 1200)}]
    )
    phone.get_by_role("button", name="Send photo").click()
    expect(phone.locator("#status")).to_contain_text("sent again by itself")
    expect(phone.locator("#verdict")).to_have_text("Accepted", timeout=15_000)
    assert len(keys) == 2 and keys[0] == keys[1]
    assert len(_stored(live, "A1")) == 1 and len(scripted.calls) == 1
    assert [r["state"] for r in _queue(phone)] == ["sent"]
