"""The clients of bench/bench_load.py: artisans and QC staff in a closed loop, and the per-endpoint
latencies and errors they record."""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Stats:
    lock: threading.Lock = field(default_factory=threading.Lock)
    ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, dict[int, int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int))
    )

    def record(self, name: str, ms: float, status: int, ok: bool, detail: str = "") -> None:
        with self.lock:
            self.ms[name].append(ms)
            self.statuses[name][status] += 1
            if not ok:
                self.errors[name].append(f"{status} {detail[:160]}")


class Traffic:
    def __init__(self, base: str, photos: list[tuple[str, bytes]], stats: Stats) -> None:
        self.base, self.photos, self.stats = base, photos, stats
        self.counter = 0
        self.lock = threading.Lock()

    def call(
        self,
        http: httpx.Client,
        name: str,
        method: str,
        url: str,
        want: int,
        **kw: Any,
    ) -> httpx.Response | None:
        t0 = time.perf_counter()
        try:
            r = http.request(method, f"{self.base}{url}", timeout=120.0, **kw)
        except httpx.HTTPError as exc:
            self.stats.record(name, (time.perf_counter() - t0) * 1e3, 0, False, repr(exc))
            return None
        ms = (time.perf_counter() - t0) * 1e3
        self.stats.record(name, ms, r.status_code, r.status_code == want, r.text)
        return r if r.status_code == want else None

    def next_n(self) -> int:
        with self.lock:
            self.counter += 1
            return self.counter

    def upload(self, http: httpx.Client, headers: dict[str, str], tag: str) -> Any:
        n = self.next_n()
        design, data = self.photos[n % len(self.photos)]
        r = self.call(
            http,
            "POST /api/v1/inspections",
            "POST",
            "/api/v1/inspections",
            201,
            headers={**headers, "Idempotency-Key": f"load-{tag}-{n}"},
            data={"design_id": design, "piece_id": f"L{n}"},
            files=[("photos", (f"p{n}.jpg", data, "image/jpeg"))],
        )
        return r.json()["id"] if r is not None else None

    def artisan(self, headers: dict[str, str], stop: threading.Event, seed: int) -> None:
        rng = random.Random(seed)
        mine: list[str] = []
        with httpx.Client() as http:
            while not stop.is_set():
                roll = rng.random()
                if roll < 0.35 or not mine:
                    if (i := self.upload(http, headers, f"a{seed}")) is not None:
                        mine.append(i)
                elif roll < 0.55:
                    self.call(
                        http,
                        "GET /api/v1/inspections",
                        "GET",
                        "/api/v1/inspections?limit=20",
                        200,
                        headers=headers,
                    )
                elif roll < 0.75:
                    self.call(
                        http,
                        "GET /api/v1/inspections/{id}",
                        "GET",
                        f"/api/v1/inspections/{rng.choice(mine)}",
                        200,
                        headers=headers,
                    )
                elif roll < 0.90:
                    self.call(
                        http,
                        "GET /api/v1/inspections/{id}/photos/0",
                        "GET",
                        f"/api/v1/inspections/{rng.choice(mine)}/photos/0",
                        200,
                        headers=headers,
                    )
                else:
                    self.call(
                        http, "GET /api/v1/orders", "GET", "/api/v1/orders", 200, headers=headers
                    )

    def qc(
        self, headers: dict[str, str], share: int, shares: int, stop: threading.Event, seed: int
    ) -> None:
        rng = random.Random(seed)
        with httpx.Client() as http:
            while not stop.is_set():
                roll = rng.random()
                r = self.call(
                    http,
                    "GET /api/v1/reviews",
                    "GET",
                    "/api/v1/reviews?limit=50",
                    200,
                    headers=headers,
                )
                items = r.json()["data"] if r is not None else []
                mine = [i["id"] for i in items if int(i["id"], 16) % shares == share]
                if roll < 0.4 and mine:
                    self.call(
                        http,
                        "POST /api/v1/reviews/{id}/decision",
                        "POST",
                        f"/api/v1/reviews/{mine[0]}/decision",
                        201,
                        headers=headers,
                        json={"decision": rng.choice(["approve", "reject"]), "labels": []},
                    )
                elif roll < 0.7 and items:
                    self.call(
                        http,
                        "GET /api/v1/reviews/{id}",
                        "GET",
                        f"/api/v1/reviews/{rng.choice(items)['id']}",
                        200,
                        headers=headers,
                    )
                elif roll < 0.8:
                    self.call(
                        http,
                        "GET /api/v1/reviews/metrics",
                        "GET",
                        "/api/v1/reviews/metrics",
                        200,
                        headers=headers,
                    )
                else:
                    time.sleep(0.2)  # reading the photo on screen
