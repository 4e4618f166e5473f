"""Overload beyond capacity, against `kito serve` over TCP: more simultaneous uploads than
inspection slots plus queue places. Every request gets an answer: 201, or 503 `overloaded`
with Retry-After; no timeout, no dropped connection, no crash, nothing half-stored."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest
from live_service import REPO, Service
from photo_samples import jpeg

CLIENTS = 16


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_overload_is_503_with_retry_after(tmp_path: Path, database: str, catalog_dir: Path) -> None:
    svc = Service(
        tmp_path / "data",
        database,
        catalog_dir,
        model_dir=REPO / "models" / "default",
        inspect_concurrency=1,
        inspect_queue=2,
    )
    svc.start()
    try:
        _, headers = svc.user("artisan")
        photos = [jpeg(1600, 1200 + i) for i in range(CLIENTS)]
        answers: list[tuple[int, str | None, str]] = []
        failures: list[str] = []
        start = threading.Barrier(CLIENTS)

        def upload(i: int) -> None:
            start.wait()
            try:
                r = httpx.post(
                    f"{svc.base}/api/v1/inspections",
                    headers={**headers, "Idempotency-Key": f"k{i}"},
                    data={"design_id": "KQ-HOOP-BR-30", "piece_id": f"P{i}"},
                    files=[("photos", ("a.jpg", photos[i], "image/jpeg"))],
                    timeout=120,
                )
            except httpx.HTTPError as exc:
                failures.append(repr(exc))
                return
            code = r.json()["error"]["code"] if r.status_code >= 400 else ""
            answers.append((r.status_code, r.headers.get("retry-after"), code))

        threads = [threading.Thread(target=upload, args=(i,)) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        assert failures == [] and len(answers) == CLIENTS
        accepted = [a for a in answers if a[0] == 201]
        refused = [a for a in answers if a[0] != 201]
        assert refused, "nothing was refused: the test did not overload the service"
        assert all(s == 503 and c == "overloaded" and int(r or 0) >= 1 for s, r, c in refused)
        # At least the slot and the queue places were served.
        assert len(accepted) >= 3
        assert svc.alive()
        counts = svc.counts()
        assert counts["Inspection"] == len(accepted) == counts["Photo"]
        report = svc.fsck()
        assert report.ok, report.lines()
        print(f"{CLIENTS} simultaneous uploads: {len(accepted)} accepted, {len(refused)} 503")
    finally:
        svc.stop()
