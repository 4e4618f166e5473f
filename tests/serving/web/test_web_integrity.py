"""A photo already sent for another piece: the QC desk shows it beside the earlier photo, and
the artisan reads a plain line in the chosen language."""

from __future__ import annotations

import pytest
from live_server import LiveServer
from playwright.sync_api import Page, expect
from scripted_inspector import ScriptedInspector
from web_helpers import (
    CUFF,
    HOOP,
    clear_queue,
    expect_loaded,
    get_order,
    make_order,
    sign_in_qc,
    upload,
)

pytestmark = pytest.mark.browser

FINGERPRINT = {"phash": "0123456789abcdef", "frame": "mat", "cells": [100, 101, 164, 165]}


def test_desk_shows_the_reused_photo_beside_the_earlier_one(
    live: LiveServer, desk: Page, scripted: ScriptedInspector
) -> None:
    _, qc = live.user("qc", "Njeri")
    clear_queue(live, qc)
    artisan_id, artisan = live.user("artisan", "Wambui")
    order = make_order(live, qc, artisan_id, [("R1", HOOP, 45000), ("R2", HOOP, 30000)])
    scripted.fingerprint = FINGERPRINT
    first = upload(live, artisan, order["id"], "R1", HOOP)
    second = upload(live, artisan, order["id"], "R2", HOOP)
    assert first["verdict"] == "pass" and second["verdict"] == "review"
    assert get_order(live, qc, order["id"])["payout"] is None

    sign_in_qc(desk, live, qc)
    item = desk.locator(".queue-item")
    expect(item).to_have_count(1)
    expect(item).to_contain_text("Photo reused")
    pair = desk.locator("#photos .reused-pair")
    expect(pair).to_have_count(1)
    expect(pair).to_contain_text(first["id"])
    expect(pair).to_contain_text("R1")
    expect(pair).to_contain_text("Earlier: inspection")
    imgs = pair.locator("img.photo-img")
    expect(imgs).to_have_count(2)
    expect_loaded(imgs.nth(0))
    expect_loaded(imgs.nth(1))
    expect(desk.locator("#item-reasons")).to_contain_text("looks like one already sent")


def test_desk_shows_a_piece_of_another_design_beside_a_photo_of_that_design(
    live: LiveServer, desk: Page, scripted: ScriptedInspector
) -> None:
    _, qc = live.user("qc", "Njeri")
    clear_queue(live, qc)
    artisan_id, artisan = live.user("artisan", "Akinyi")
    order = make_order(live, qc, artisan_id, [("D1", CUFF, 45000), ("D2", HOOP, 30000)])
    example = upload(live, artisan, order["id"], "D1", CUFF)  # a cuff the model passed
    assert example["verdict"] == "pass"
    scripted.design_check = {
        "declared": HOOP,
        "likely_design": CUFF,
        "ratio": 1.9,
        "threshold": 1.23,
        "flagged": True,
        "photos": [None],
    }
    held = upload(live, artisan, order["id"], "D2", HOOP)
    assert held["verdict"] == "review"
    check = held["result"]["design_check"]
    assert check["example"] == {"inspection_id": example["id"], "position": 0, "piece_id": "D1"}
    assert get_order(live, qc, order["id"])["payout"] is None

    sign_in_qc(desk, live, qc)
    expect(desk.locator(".queue-item")).to_have_count(1)
    section = desk.locator("#photos .design-check")
    expect(section).to_contain_text("Looks like another design")
    expect(section).to_contain_text(f"Sent as {HOOP}; the model finds it closer to {CUFF}")
    expect(section).to_contain_text(example["id"])
    imgs = section.locator("img.photo-img")
    expect(imgs).to_have_count(2)
    expect_loaded(imgs.nth(0))
    expect_loaded(imgs.nth(1))
    expect(desk.locator("#item-reasons")).to_contain_text("looks like a different design")
