"""Issue 28, case 4 and case 9 (first half), against `kito serve` over TCP.

Case 4: 20 connections POST uploads without a token, declare 1 MB and send 16 bytes a second;
before, they filled the admission bound and every artisan got 503 `overloaded`. Now admission
comes after the token check (401 before any body is read), and an authenticated body that
trickles in is cut at `KITO_BODY_TIMEOUT_S` with 408, its slot given back.

Case 9: uvicorn believed X-Forwarded-For from loopback, so changing that header escaped the
auth-failure limiter. Now proxy headers count only from `KITO_TRUSTED_PROXIES` (off by default).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from live_service import REPO, Service
from photo_samples import jpeg

SLOW = 20


def _slow_upload(port: int, token: str | None, stop: threading.Event) -> socket.socket:
    """A socket that has sent an upload's headers (1 MB declared) and then trickles 16 bytes a
    second from a thread until `stop`."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    head = (
        "POST /api/v1/inspections HTTP/1.1\r\nHost: x\r\n"
        f"{auth}Content-Type: multipart/form-data; boundary=b\r\n"
        "Content-Length: 1000000\r\n\r\n"
        # A well-formed start of a photo part: what follows is its (endless) content.
        '--b\r\nContent-Disposition: form-data; name="photos"; filename="a.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    )
    s.sendall(head.encode())

    def trickle() -> None:
        while not stop.wait(1.0):
            try:
                s.sendall(b"x" * 16)
            except OSError:
                return

    threading.Thread(target=trickle, daemon=True).start()
    return s


def _answer(s: socket.socket) -> str:
    """The status line the server sent, or '' if it closed without one."""
    try:
        return s.recv(4096).decode(errors="replace").split("\r\n", 1)[0]
    except OSError as exc:
        return f"error {exc}"


@pytest.fixture(scope="module")
def slow_service(tmp_path_factory: pytest.TempPathFactory, catalog_dir: Path) -> Iterator[Service]:
    tmp_path = tmp_path_factory.mktemp("slow")
    svc = Service(
        tmp_path / "data",
        f"sqlite:///{tmp_path / 'kito.db'}",
        catalog_dir,
        model_dir=REPO / "models" / "default",
        inspect_concurrency=1,
        inspect_queue=2,
        body_timeout_s=3,
    )
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()


def test_slow_unauthenticated_bodies_do_not_block_an_artisan(slow_service: Service) -> None:
    svc = slow_service
    _, headers = svc.user("artisan")
    stop = threading.Event()
    socks = [_slow_upload(svc.port, None, stop) for _ in range(SLOW)]
    try:
        time.sleep(0.5)  # all 20 are in, trickling
        r = httpx.post(
            f"{svc.base}/api/v1/inspections",
            headers=headers,
            data={"design_id": "KQ-HOOP-BR-30", "piece_id": "P1"},
            files=[("photos", ("a.jpg", jpeg(1600, 1200), "image/jpeg"))],
            timeout=60,
        )
        assert r.status_code == 201, r.text
        assert r.json()["status"] == "inspected" and r.json()["verdict"] is not None
        statuses = [_answer(s) for s in socks]
        assert all(" 401 " in line for line in statuses), statuses
    finally:
        stop.set()
        for s in socks:
            s.close()


def test_an_authenticated_slow_body_is_cut_with_408_and_frees_its_slot(
    slow_service: Service,
) -> None:
    svc = slow_service
    _, headers = svc.user("artisan")
    token = headers["Authorization"].split()[1]
    stop = threading.Event()
    socks = [_slow_upload(svc.port, token, stop) for _ in range(3)]  # 1 slot + 2 waiting
    try:
        t0 = time.monotonic()
        statuses = [_answer(s) for s in socks]
        assert all(" 408 " in line for line in statuses), statuses
        assert time.monotonic() - t0 < 20
    finally:
        stop.set()
        for s in socks:
            s.close()
    r = httpx.post(
        f"{svc.base}/api/v1/inspections",
        headers=headers,
        data={"design_id": "KQ-HOOP-BR-30", "piece_id": "P1"},
        files=[("photos", ("a.jpg", jpeg(800, 600), "image/jpeg"))],
        timeout=60,
    )
    assert r.status_code == 201, r.text


def _guess(svc: Service, n: int, vary_forwarded_for: bool) -> list[int]:
    codes = []
    with httpx.Client(timeout=10) as http:
        for i in range(n):
            h = {"Authorization": f"Bearer kito_wrong{i}"}
            if vary_forwarded_for:
                h["X-Forwarded-For"] = f"203.0.113.{i % 250 + 1}"
            codes.append(http.get(f"{svc.base}/api/v1/orders", headers=h).status_code)
    return codes


@pytest.mark.slow
@pytest.mark.parametrize("trusted", ["", "127.0.0.1"])
def test_forwarded_for_counts_only_from_trusted_proxies(
    tmp_path: Path, catalog_dir: Path, trusted: str
) -> None:
    svc = Service(
        tmp_path / "data",
        f"sqlite:///{tmp_path / 'kito.db'}",
        catalog_dir,
        auth_failures_per_minute=5,
        trusted_proxies=trusted,
    )
    svc.start()
    try:
        codes = _guess(svc, 12, vary_forwarded_for=True)
        if not trusted:  # the header is ignored: all twelve guesses come from one address
            assert codes[:5] == [401] * 5 and codes[5:] == [429] * 7, codes
        else:  # behind a trusted proxy each forwarded address is counted on its own
            assert codes == [401] * 12, codes
    finally:
        svc.stop()
