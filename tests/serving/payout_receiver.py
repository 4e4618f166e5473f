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
    as a real payment provider must: `payments` holds each key once, `requests` every call."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.requests: list[dict[str, Any]] = []
        self.payments: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.url = ""

    def handle(self, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            payload = json.loads(body)
            self.requests.append({"headers": headers, "payload": payload})
            if len(self.requests) <= self.fail_first:
                return 503
            self.payments.setdefault(headers["idempotency-key"], payload)
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
