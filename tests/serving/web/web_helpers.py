"""Steps the browser tests share: orders and uploads through the API, signing in on the pages."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from live_server import LiveServer
from photo_samples import jpeg
from playwright.sync_api import Locator, Page, expect
from scripted_inspector import ScriptedInspector

HOOP = "KQ-HOOP-BR-30"
CUFF = "KQ-CUFF-BR-65"


def make_order(
    live: LiveServer,
    staff_token: str,
    artisan_id: int,
    pieces: list[tuple[str, str, int]],
    order_id: str | None = None,
) -> dict[str, Any]:
    """POST /api/v1/orders as QC staff; pieces are (piece_id, design_id, payout_minor)."""
    body: dict[str, Any] = {
        "artisan_id": artisan_id,
        "currency": "KES",
        "pieces": [{"piece_id": p, "design_id": d, "payout_minor": m} for p, d, m in pieces],
    }
    if order_id:
        body["id"] = order_id
    with live.api(staff_token) as api:
        r = api.post("/api/v1/orders", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def upload(
    live: LiveServer, artisan_token: str, order_id: str, piece_id: str, design_id: str
) -> dict[str, Any]:
    """An inspection through the API, as the artisan's phone would send it."""
    with live.api(artisan_token) as api:
        r = api.post(
            "/api/v1/inspections",
            data={"design_id": design_id, "piece_id": piece_id, "order_id": order_id},
            files=[("photos", ("photo.jpg", jpeg(1200, 900), "image/jpeg"))],
        )
    assert r.status_code == 201, r.text
    return r.json()


def get_order(live: LiveServer, token: str, order_id: str) -> dict[str, Any]:
    with live.api(token) as api:
        r = api.get(f"/api/v1/orders/{order_id}")
    assert r.status_code == 200, r.text
    return r.json()


def open_reviews(live: LiveServer, staff_token: str) -> list[dict[str, Any]]:
    with live.api(staff_token) as api:
        r = api.get("/api/v1/reviews", params={"status": "open", "limit": 200})
    assert r.status_code == 200, r.text
    return r.json()["data"]


def clear_queue(live: LiveServer, staff_token: str) -> None:
    """Decide whatever earlier tests left open, so a test's queue holds only its own items."""
    with live.api(staff_token) as api:
        for item in open_reviews(live, staff_token):
            r = api.post(
                f"/api/v1/reviews/{item['id']}/decision", json={"decision": "approve", "labels": []}
            )
            assert r.status_code in (201, 409), r.text


def hold_reused_photos(
    live: LiveServer, qc_token: str, scripted: ScriptedInspector, phash: str
) -> dict[str, Any]:
    """Photos held as reused (reason photo_reused): Halima sends a photo of N1; Zawadi sends the
    same photo (fingerprint `phash`, distinct per test: the server is shared) for M1, which QC
    rejects, and again for M2, still open. M1 matches N1; M2 matches N1 and M1."""
    halima_id, halima = live.user("artisan", "Halima")
    zawadi_id, zawadi = live.user("artisan", "Zawadi")
    earlier = make_order(live, qc_token, halima_id, [("N1", HOOP, 30000)])
    order = make_order(live, qc_token, zawadi_id, [("M1", HOOP, 30000), ("M2", HOOP, 30000)])
    scripted.fingerprint = {"phash": phash, "frame": "mat", "cells": [100, 101, 164, 165]}
    first = upload(live, halima, earlier["id"], "N1", HOOP)
    m1 = upload(live, zawadi, order["id"], "M1", HOOP)
    m2 = upload(live, zawadi, order["id"], "M2", HOOP)
    assert (first["verdict"], m1["verdict"], m2["verdict"]) == ("pass", "review", "review")
    with live.api(qc_token) as api:
        r = api.get("/api/v1/reviews", params={"reason": "photo_reused", "artisan_id": zawadi_id})
        (item,) = [i for i in r.json()["data"] if i["inspection"]["id"] == m1["id"]]
        body = {"decision": "reject", "labels": [], "note": "Picha ile ile ya N1."}
        r = api.post(f"/api/v1/reviews/{item['id']}/decision", json=body)
    assert r.status_code == 201, r.text
    return {
        "artisan_id": zawadi_id,
        "earlier_order": earlier["id"],
        "order": order["id"],
        "m1": m1["id"],
        "m2": m2["id"],
    }


def expect_loaded(img: Locator) -> None:
    """The <img> shows the authenticated image: a blob: URL that decoded to real pixels."""
    expect(img).to_have_attribute("src", re.compile(r"^blob:"))
    width = img.evaluate(
        """img => img.complete ? img.naturalWidth
          : new Promise(done => img.addEventListener('load', () => done(img.naturalWidth)))"""
    )
    assert width > 0


def sign_in_app(page: Page, live: LiveServer, token: str) -> None:
    page.goto(f"{live.url}/app")
    page.get_by_label("Your access code").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#work")).to_be_visible()


def sign_in_qc(page: Page, live: LiveServer, token: str) -> None:
    page.goto(f"{live.url}/qc")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#desk")).to_be_visible()


def snap(page: Page, name: str) -> Path:
    """A screenshot of one page state, kept as a test artifact (.artifacts/screenshots/states)."""
    root = Path(os.environ.get("KITO_ARTIFACTS_DIR", Path(__file__).parents[3] / ".artifacts"))
    path = root / "screenshots" / "states" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    return path


def pick_piece(page: Page, piece_id: str) -> None:
    card = page.locator(f"#piece-cards [data-piece='{piece_id}']")
    card.click()
    expect(card).to_have_attribute("aria-pressed", "true")
