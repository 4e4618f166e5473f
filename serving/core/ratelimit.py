"""Token guessing: failed bearer tokens counted per client address over a sliding minute.

In memory, per process: each replica counts on its own, so N replicas allow N times the limit
(still far too few guesses for a 256-bit token; the limit is there to make guessing noisy and
slow, and to keep a scanner from costing a database lookup per try).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable


class FailedAuthLimiter:
    """At most `per_minute` failed tokens per client in any 60 s; then every request from that
    client that needs a token is refused until its oldest failure leaves the window."""

    def __init__(
        self,
        per_minute: int,
        *,
        window_s: float = 60.0,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_minute = per_minute
        self.window_s = window_s
        self.max_clients = max_clients
        self.clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> int | None:
        """Seconds until `client` may try again, or None if it is not blocked."""
        with self._lock:
            now = self.clock()
            times = self._recent(client, now)
            if times is None or len(times) < self.per_minute:
                return None
            return max(1, math.ceil(times[0] + self.window_s - now))

    def failed(self, client: str) -> None:
        with self._lock:
            now = self.clock()
            times = self._recent(client, now)
            if times is None:
                self._make_room(now)
                times = self._failures[client] = deque(maxlen=self.per_minute)
            times.append(now)
            self._failures.move_to_end(client)

    def _recent(self, client: str, now: float) -> deque[float] | None:
        times = self._failures.get(client)
        if times is not None:
            while times and times[0] <= now - self.window_s:
                times.popleft()
        return times

    def _make_room(self, now: float) -> None:
        # Bounded memory under a scan from many addresses: forget quiet clients first, then the
        # ones whose last failure is oldest.
        if len(self._failures) < self.max_clients:
            return
        for key in [k for k, t in self._failures.items() if not t or t[-1] <= now - self.window_s]:
            del self._failures[key]
        while len(self._failures) >= self.max_clients:
            self._failures.popitem(last=False)
