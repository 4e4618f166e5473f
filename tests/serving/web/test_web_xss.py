"""Text that users typed (names, QC notes) is shown as text on both pages: an injected script
does not run. Checked with a window flag the payloads would set, and with dialogs they would
open; the CSP would also refuse them, so the flag check is on the text itself as well."""

from __future__ import annotations

import pytest
from live_server import LiveServer
from playwright.sync_api import Dialog, Page, expect
from scripted_inspector import ScriptedInspector
from web_helpers import HOOP, clear_queue, make_order, sign_in_app, sign_in_qc, upload

pytestmark = pytest.mark.browser

NAME = "Eve <img src=x onerror=\"window.__xss='name';alert(1)\">"
NOTE = "<script>window.__xss='note';alert(2)</script><img src=x onerror=\"window.__xss='img'\">"


def _trap(page: Page) -> list[str]:
    dialogs: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return dialogs


def test_names_and_notes_are_text_and_never_run(
    live: LiveServer, desk: Page, phone: Page, scripted: ScriptedInspector
) -> None:
    _, qc = live.user("qc", "Njeri")
    clear_queue(live, qc)
    artisan_id, artisan = live.user("artisan", NAME)
    order = make_order(live, qc, artisan_id, [("X1", HOOP, 1000)])
    scripted.verdict = "review"
    upload(live, artisan, order["id"], "X1", HOOP)
    desk_dialogs, phone_dialogs = _trap(desk), _trap(phone)

    # QC desk: the artisan's name in the queue and the item; the reviewer types the note.
    sign_in_qc(desk, live, qc)
    expect(desk.locator(".queue-item .qi-artisan")).to_have_text(NAME)
    expect(desk.locator("#item-meta")).to_contain_text(NAME)
    desk.get_by_label("other (say what in the note)").check()
    desk.get_by_label('Note (needed with "other")').fill(NOTE)
    desk.keyboard.press("Escape")  # leave the note, so R is a command and not a letter
    desk.keyboard.press("r")
    expect(desk.locator("#item-status")).to_contain_text("Rejected X1.")
    desk.get_by_label("Status").select_option("decided")
    desk.locator(".queue-item", has_text="X1").click()
    expect(desk.locator("#decision-note")).to_have_text(NOTE)

    # Artisan phone: the name in the greeting, the note in the piece's reason.
    sign_in_app(phone, live, artisan)
    expect(phone.locator("#hello")).to_have_text(f"Hello, {NAME}")
    phone.get_by_label("Order", exact=True).select_option(order["id"])
    expect(phone.locator("#piece-cards [data-piece='X1'] .card-why")).to_contain_text(NOTE)

    for page in (desk, phone):
        assert page.evaluate("window.__xss") is None
        # No element was made from the payloads: they exist only as text.
        assert page.locator("script:not([src])").count() == 0
        assert page.locator("img[src='x']").count() == 0
    assert desk_dialogs == [] and phone_dialogs == []
