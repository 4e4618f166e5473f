"""Helpers for the review tests: an inspector's stored details, the queue as a reviewer reads
it, and one open review item to decide."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from order_helpers import make_order, submit


def details(score: float, band: tuple[float, float] = (0.3, 0.7), **extra: Any) -> dict[str, Any]:
    """What the real inspector stores: per-class piece scores and their review bands."""
    return {
        "verdict": {"scores": {"scratch": score}, "defects": ["scratch"], "reasons": []},
        "thresholds": {"bands": {"scratch": list(band)}, "overridden": []},
        **extra,
    }


def queue(client: TestClient, headers: dict[str, str], query: str = "") -> dict[str, Any]:
    r = client.get(f"/api/v1/reviews{query}", headers=headers)
    assert r.status_code == 200, r.json()
    return r.json()


def one_item(client: TestClient, people, inspector, verdict: str = "fail") -> dict[str, Any]:
    make_order(client, people["hq"], people["artisan"], {"P1": 100, "P2": 200})
    inspector.verdict = verdict
    submit(client, people["ha"], "P1")
    (item,) = queue(client, people["hq"])["data"]
    return item
