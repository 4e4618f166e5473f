"""Reused photos in the service: the multi-index lookup, and an order whose second piece reuses
the first piece's photo is held for QC, not paid, until QC decides."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from order_helpers import make_order
from sqlalchemy import create_engine
from sqlalchemy.orm import Session
from upload_helpers import DESIGN, post

from qc_model.catalog import Design
from qc_model.decode import DecodedPhoto
from qc_model.fingerprint import MATCH_BITS, Fingerprint, fingerprint_details
from qc_model.gate import check_photo
from serving.db.models import Inspection, PhotoFingerprint, User
from serving.inspection.fingerprints import (
    chunks,
    find_matches,
    neighbours,
    row_for,
    to_signed,
    to_unsigned,
)
from serving.inspection.pipeline import InspectionOutcome

sys.path.insert(0, str(Path(__file__).parents[1] / "qc_model"))
from fingerprint_scenes import cheat_copy, jpeg, scene


def test_neighbours_and_signed_storage() -> None:
    assert len(neighbours(0x1234, 0, 21)) == 1
    assert len(set(neighbours(0x1234, 2, 21))) == 1 + 21 + 210
    h = 0x0123_4567_89AB_CDEF
    widths = (22, 21, 21)
    parts = chunks(h)
    assert (parts[0] << 42) | (parts[1] << 21) | parts[2] == h
    assert all(p < 1 << w for p, w in zip(parts, widths, strict=True))
    for h in (0, 1, (1 << 63) - 1, 1 << 63, (1 << 64) - 1):
        assert to_unsigned(to_signed(h)) == h
        assert -(1 << 63) <= to_signed(h) < 1 << 63


def test_lookup_finds_exactly_the_hashes_within_the_radius(db_url: str) -> None:
    engine = create_engine(db_url)
    query = 0xF0F0_1234_ABCD_0F0F
    with Session(engine) as s:
        user = User(name="A", role="artisan", token_hash="x" * 64)
        s.add(user)
        s.flush()
        for d in range(MATCH_BITS + 4):
            # d bits flipped, spread over the three chunks (the pigeonhole's worst case).
            h = query
            for k in range(d):
                h ^= 1 << ((k % 3) * 21 + k // 3)
            insp = Inspection(
                owner_id=user.id,
                design_id=DESIGN,
                piece_id=f"P{d}",
                order_id="O",
                status="inspected",
                request_hash="0" * 64,
            )
            s.add(insp)
            s.flush()
            fields = dict(inspection_id=insp.id, position=0, owner_id=user.id)
            s.add(row_for(Fingerprint(h, "mat"), order_id="O", piece_id=f"P{d}", **fields))
        s.flush()
        found = find_matches(s, Fingerprint(query, "mat"))
        assert [m.distance for m in found] == list(range(MATCH_BITS + 1))
        assert [m.piece_id for m in found][:2] == ["P0", "P1"]
        # A piece's own earlier photos are not a reuse.
        assert "P0" not in [
            m.piece_id for m in find_matches(s, Fingerprint(query, "mat"), not_piece=("O", "P0"))
        ]
        assert s.query(PhotoFingerprint).count() == MATCH_BITS + 4
    engine.dispose()


class GatedInspector:
    """Passes every photo, with the real gate's fingerprints (what ModelInspector adds)."""

    model_version = "fake-gated-1"
    min_px_per_mm = None  # measures at the service's decode size (no model scale to respect)

    def inspect(
        self, photos: list[DecodedPhoto], design: Design, plan: object = None
    ) -> InspectionOutcome:
        gates = [check_photo(p.image) for p in photos]
        images = [p.image for p in photos]
        details = {
            "verdict": {"decision": "pass", "reasons": []},
            "fingerprints": fingerprint_details(images, gates),
        }
        return InspectionOutcome("pass", self.model_version, details, {})


@pytest.fixture
def inspector() -> Any:  # overrides conftest's FakeInspector for this module's clients
    return GatedInspector()


def _submit(client: TestClient, headers: dict[str, str], piece: str, data: bytes) -> dict[str, Any]:
    r = post(client, headers, [("a.jpg", data, "image/jpeg")], piece_id=piece, order_id="ORD-1")
    assert r.status_code == 201, r.json()
    return r.json()


@pytest.mark.slow
def test_reused_photo_holds_the_order_until_qc_decides(client: TestClient, make_user) -> None:
    artisan, ha = make_user("artisan", "Wanjiru")
    _, staff = make_user("qc", "Q")
    make_order(client, staff, artisan, {"P1": 45000, "P2": 30000})
    photo = scene(7)
    first = _submit(client, ha, "P1", jpeg(photo))
    assert first["verdict"] == "pass"
    second = _submit(client, ha, "P2", cheat_copy(photo, angle=3.0, crop=0.03, scale=0.85))
    assert second["verdict"] == "review"
    integrity = second["result"]["integrity"]
    assert integrity["reason"] == "photo_reused"
    assert integrity["matches"][0]["inspection_id"] == first["id"]
    assert integrity["matches"][0]["piece_id"] == "P1"
    assert integrity["messages"]["sw"] and integrity["messages"]["en"]
    assert second["result"]["model_verdict"] == "pass"
    order = client.get("/api/v1/orders/ORD-1", headers=ha).json()
    assert order["payout"] is None
    held = next(p for p in order["pieces"] if p["piece_id"] == "P2")
    assert held["state"] == "pending"
    r = client.get("/api/v1/reviews?reason=photo_reused", headers=staff)
    assert r.status_code == 200, r.json()
    items = r.json()["data"]
    assert [i["inspection"]["id"] for i in items] == [second["id"]]
    assert (
        items[0]["inspection"]["result"]["integrity"]["matches"][0]["inspection_id"] == first["id"]
    )
    # QC looks at both photos and decides they are two pieces after all: now it pays.
    r = client.post(
        f"/api/v1/reviews/{items[0]['id']}/decision", headers=staff, json={"decision": "approve"}
    )
    assert r.status_code == 201, r.json()
    assert client.get("/api/v1/orders/ORD-1", headers=ha).json()["payout"] is not None


@pytest.mark.slow
def test_distinct_photos_pay_and_a_retake_of_the_same_piece_is_no_reuse(
    client: TestClient, make_user
) -> None:
    artisan, ha = make_user("artisan", "Wanjiru")
    _, staff = make_user("qc", "Q")
    make_order(client, staff, artisan, {"P1": 45000, "P2": 30000})
    photo = scene(11)
    assert _submit(client, ha, "P1", jpeg(photo))["verdict"] == "pass"
    # The same piece sent again (a second upload of P1) is not another piece's photo.
    assert _submit(client, ha, "P1", jpeg(photo, quality=80))["verdict"] == "pass"
    assert _submit(client, ha, "P2", jpeg(scene(12)))["verdict"] == "pass"
    assert client.get("/api/v1/orders/ORD-1", headers=ha).json()["payout"] is not None
