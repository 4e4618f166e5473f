"""A local stand-in for the payment side: an HTTP server that pays each payout id once."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """Answers 503 to the first `fail_first` requests, then 200. Dedupes by Idempotency-Key,
    as a real payment provider must: `payments` holds each key once, `requests` every call.
    `hold_s`: how long to keep the first `hold_first` callers waiting for the answer (after
    paying), the moment a dispatcher can be killed mid-delivery; `received` is set meanwhile."""

    def __init__(self, fail_first: int = 0, hold_first: int = 0, hold_s: float = 0.0) -> None:
        self.fail_first = fail_first
        self.hold_first = hold_first
        self.hold_s = hold_s
        self.requests: list[dict[str, Any]] = []
        self.payments: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.received = threading.Event()
        self.url = ""

    def handle(self, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            payload = json.loads(body)
            self.requests.append({"headers": headers, "payload": payload})
            n = len(self.requests)
            if n <= self.fail_first:
                return 503
            self.payments.setdefault(headers["idempotency-key"], payload)
        if n <= self.hold_first:
            self.received.set()
            threading.Event().wait(self.hold_s)
        return 200


@contextmanager
def running(receiver: Receiver) -> Iterator[Receiver]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            headers = {k.lower(): v for k, v in self.headers.items()}
            status = receiver.handle(headers, body)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"ok": true}' if status == 200 else b'{"error": "try later"}')

        def log_message(self, *_: object) -> None:  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/payouts"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
