"""Clients that upload with Idempotency-Keys and retry until answered: the traffic of the crash
and outage tests, and what they check afterwards (one inspection per key, every 2xx there with
the photos as sent)."""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field

import httpx
from live_service import Service
from photo_samples import jpeg
from sqlalchemy import func, select

from serving.db.models import Inspection

DESIGN = "KQ-HOOP-BR-30"


@dataclass
class Upload:
    key: str
    order_id: str
    piece_id: str
    photos: list[bytes]
    answered: str | None = None  # inspection id of the first 2xx
    statuses: list[str] = field(default_factory=list)  # every try: status code or error name


class Client(threading.Thread):
    """Uploads in order; on a connection error or 503 waits and retries the same upload."""

    def __init__(self, svc: Service, headers: dict[str, str], uploads: list[Upload]) -> None:
        super().__init__(daemon=True)
        self.svc, self.headers, self.uploads = svc, headers, uploads
        self.errors: list[str] = []
        self.ok = 0

    def run(self) -> None:
        with httpx.Client(timeout=60) as http:
            for up in self.uploads:
                deadline = time.monotonic() + 180
                while up.answered is None and time.monotonic() < deadline:
                    self._try(http, up)
                if up.answered is None:
                    self.errors.append(f"{up.key}: no answer in 180 s ({up.statuses})")

    def _try(self, http: httpx.Client, up: Upload) -> None:
        try:
            r = http.post(
                f"{self.svc.base}/api/v1/inspections",
                headers={**self.headers, "Idempotency-Key": up.key},
                data={"design_id": DESIGN, "piece_id": up.piece_id, "order_id": up.order_id},
                files=[("photos", (f"{i}.jpg", b, "image/jpeg")) for i, b in enumerate(up.photos)],
            )
        except httpx.TransportError as exc:  # killed mid-request, or not up yet
            up.statuses.append(type(exc).__name__)
            time.sleep(0.2)
            return
        up.statuses.append(str(r.status_code))
        if r.status_code in (200, 201):
            up.answered = r.json()["id"]
            self.ok += 1
        elif r.status_code == 503:
            time.sleep(float(r.headers.get("retry-after", "1")))
        else:
            self.errors.append(f"{up.key}: {r.status_code} {r.text[:200]}")
            up.answered = "refused"


def make_clients(svc: Service, clients: int, uploads: int) -> list[Client]:
    """`clients` artisans, each with an order of `uploads` pieces and one upload per piece."""
    _, staff = svc.user("qc", "Njeri")
    out = []
    for c in range(clients):
        artisan_id, headers = svc.user("artisan", f"Artisan {c}")
        order_id = f"ORD-C{c}"
        pieces = [f"P{i}" for i in range(uploads)]
        body = {
            "id": order_id,
            "artisan_id": artisan_id,
            "pieces": [{"piece_id": p, "design_id": DESIGN, "payout_minor": 100} for p in pieces],
        }
        r = httpx.post(f"{svc.base}/api/v1/orders", headers=staff, json=body, timeout=30)
        assert r.status_code == 201, r.text
        ups = [
            Upload(
                key=f"c{c}-u{i}",
                order_id=order_id,
                piece_id=pieces[i],
                # Distinct bytes per upload (and 1-3 photos), so each is its own set of objects.
                photos=[jpeg(320 + c, 240 + 3 * i + k) for k in range(1 + i % 3)],
            )
            for i in range(uploads)
        ]
        out.append(Client(svc, headers, ups))
    return out


def check_nothing_lost(svc: Service, clients: list[Client]) -> list[Upload]:
    """Every client done without a refusal; one inspection per key; each answered inspection
    there with its photos as sent; fsck clean. Returns the uploads."""
    for client in clients:
        client.join(300)
        stuck = {u.key: u.statuses for u in client.uploads if u.answered is None}
        assert not client.is_alive(), f"a client is still retrying after 300 s: {stuck}"
    assert [e for c in clients for e in c.errors] == []
    uploads = [u for c in clients for u in c.uploads]
    with svc.session() as s:
        per_key = dict(
            s.execute(
                select(Inspection.idempotency_key, func.count()).group_by(
                    Inspection.idempotency_key
                )
            ).all()
        )
        assert per_key == {u.key: 1 for u in uploads}
        for u in uploads:
            row = s.get(Inspection, u.answered)
            assert row is not None and row.idempotency_key == u.key
            sent = [hashlib.sha256(b).hexdigest() for b in u.photos]
            assert [p.sha256 for p in row.photos] == sent
    report = svc.fsck()
    assert report.ok, report.lines()
    return uploads
