"""The bad-input corpus (corpus.py) against `kito serve` over TCP, on SQLite and PostgreSQL:
every refused case gets its 4xx and JSON error code, the server stays up, and nothing is
stored; every accepted odd-but-legitimate case is stored exactly as sent."""

from __future__ import annotations

import json
import socket
from typing import Any

import httpx
import pytest
from corpus import OTHER_ORDER, Case, accepted_cases, refused_cases
from live_service import Service

REFUSED = refused_cases()


def test_corpus_is_large_enough() -> None:
    assert len(REFUSED) >= 40
    assert len({c.code for c in REFUSED}) >= 20  # many different reasons, not one case 40 times


def _send(client: httpx.Client, svc: Service, case: Case, auth: dict[str, dict[str, str]]):
    headers = {**auth.get(case.role, {}), **case.headers}
    if case.raw is not None:
        return _send_raw(svc, case.raw, auth["artisan"]["Authorization"])
    kw: dict[str, Any] = {"headers": headers}
    if case.photos:
        kw["files"] = [("photos", p) for p in case.photos]
    if case.form is not None:
        kw["data"] = case.form
    if case.json is not None:
        kw["json"] = case.json
    if case.content is not None:
        kw["content"] = case.content
    r = client.request(case.method, f"{svc.base}{case.path}", **kw)
    return r.status_code, r.headers, r.content


def _send_raw(svc: Service, raw: bytes, auth: str) -> tuple[int, dict[str, str], bytes]:
    raw = raw.replace(b"{host}", f"127.0.0.1:{svc.port}".encode()).replace(b"{auth}", auth.encode())
    with socket.create_connection(("127.0.0.1", svc.port), timeout=60) as sock:
        try:
            for i in range(0, len(raw), 1 << 20):
                sock.sendall(raw[i : i + (1 << 20)])
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused mid-body: the answer is already waiting
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
        want = int(headers.get("content-length", "0"))
        while len(body) < want:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    return int(lines[0].split()[1]), headers, body


def _check(case: Case, status: int, headers: Any, body: bytes) -> str | None:
    """What is wrong with the answer to `case`, or None."""
    if status != case.status:
        return f"status {status} (want {case.status}): {body[:200]!r}"
    if headers.get("x-content-type-options") != "nosniff" and case.code is not None:
        return "no nosniff header"
    if case.code is None:
        # The HTTP server layer (uvicorn) refused it before the app: plain text, by design.
        return None
    if not headers.get("content-type", "").startswith("application/json"):
        return f"content type {headers.get('content-type')}"
    err = json.loads(body)["error"]
    if err["code"] != case.code or not err["message"]:
        return f"error {err}"
    if case.error_field is not None and err["field"] != case.error_field:
        return f"field {err['field']!r} (want {case.error_field!r})"
    if b"Traceback" in body:
        return "traceback in body"
    return None


@pytest.fixture
def auth(service: Service) -> dict[str, dict[str, str]]:
    ids = {}
    auth: dict[str, dict[str, str]] = {"none": {}}
    for role, name in (("artisan", "Wanjiru"), ("qc", "Njeri"), ("admin", "Amani")):
        ids[role], auth[role] = service.user(role, name)
    ids["artisan2"], auth["artisan2"] = service.user("artisan", "Otieno")
    # The corpus names these ids (order_artisan_is_staff, artisan_id_of_another_artisan).
    assert (ids["artisan"], ids["qc"]) == (1, 2)
    body = {
        "id": OTHER_ORDER,
        "artisan_id": ids["artisan2"],
        "pieces": [{"piece_id": "P-1", "design_id": "KQ-HOOP-BR-30", "payout_minor": 100}],
    }
    r = httpx.post(f"{service.base}/api/v1/orders", headers=auth["qc"], json=body)
    assert r.status_code == 201, r.text
    return auth


def test_refused_cases_store_nothing_and_server_stays_up(
    service: Service, auth: dict[str, dict[str, str]]
) -> None:
    before = service.counts()
    pid = service.proc.pid  # type: ignore[union-attr]
    problems = {}
    with httpx.Client(timeout=120) as client:
        for case in REFUSED:
            status, headers, body = _send(client, service, case, auth)
            if (problem := _check(case, status, headers, body)) is not None:
                problems[case.name] = problem
            if not service.alive():
                problems[case.name] = f"server down after it: {service.tail()}"
                break
    assert problems == {}, json.dumps(problems, indent=1)
    assert service.running() and service.proc.pid == pid  # type: ignore[union-attr]
    assert service.counts() == before
    report = service.fsck()
    assert report.ok, report.lines()


def test_accepted_cases_are_stored_as_sent(
    service: Service, auth: dict[str, dict[str, str]]
) -> None:
    problems = {}
    with httpx.Client(timeout=60) as client:
        for acc in accepted_cases():
            status, _, body = _send(client, service, acc.case, auth)
            if status != acc.case.status:
                problems[acc.name] = f"status {status}: {body[:200]!r}"
                continue
            doc = json.loads(body)
            if acc.case.method == "GET":
                if doc["count"] != 0:
                    problems[acc.name] = f"a filter matched {doc['count']} rows"
                continue
            (photo,) = doc["photos"]
            sent_bytes = acc.case.photos[0][1]  # type: ignore[index]
            got = client.get(f"{service.base}{photo['url']}", headers=auth["artisan"])
            if (photo["filename"], photo["media_type"]) != (acc.filename, acc.media_type):
                problems[acc.name] = f"stored as {photo['filename']!r} {photo['media_type']}"
            elif got.content != sent_bytes or got.headers["content-type"] != acc.media_type:
                problems[acc.name] = "downloaded bytes differ from the upload"
            elif "Idempotency-Key" in acc.case.headers:
                again = client.request(
                    "POST",
                    f"{service.base}{acc.case.path}",
                    headers={**auth["artisan"], **acc.case.headers},
                    data=acc.case.form,
                    files=[("photos", p) for p in acc.case.photos],  # type: ignore[union-attr]
                )
                if again.status_code != 200 or again.json()["id"] != doc["id"]:
                    problems[acc.name] = f"replay answered {again.status_code}"
    assert problems == {}, json.dumps(problems, indent=1)
    uploads = [a for a in accepted_cases() if a.case.method == "POST"]
    assert service.counts()["Inspection"] == len(uploads)
    report = service.fsck()
    assert report.ok, report.lines()
