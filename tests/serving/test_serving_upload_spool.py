"""Uploaded photos are parsed in memory: no temporary file, no thread-pool write per chunk."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from starlette.formparsers import MultiPartParser
from starlette.requests import Request

from serving.core.limits import spool_uploads_in_memory

BOUNDARY = b"kito-test-boundary"


def _parse(photo: bytes) -> tuple[bool, bytes]:
    """(whether the photo's part went to a temporary file, its bytes) as Starlette parses it."""
    body = (
        b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="photos"; '
        b'filename="a.jpg"\r\nContent-Type: image/jpeg\r\n\r\n' + photo + b"\r\n--" + BOUNDARY
        + b"--\r\n"
    )  # fmt: skip
    chunks = iter([body[i : i + 65536] for i in range(0, len(body), 65536)] + [b""])

    async def receive() -> dict[str, object]:
        chunk = next(chunks)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunk)}

    async def parse() -> tuple[bool, bytes]:
        headers = [(b"content-type", b"multipart/form-data; boundary=" + BOUNDARY)]
        form = await Request({"type": "http", "method": "POST", "headers": headers}, receive).form()
        upload = form["photos"]
        assert not isinstance(upload, str)
        rolled = bool(getattr(upload.file, "_rolled", True))
        data = upload.file.read()
        await form.close()
        return rolled, data

    return asyncio.run(parse())


def test_a_phone_photo_stays_in_memory_once_the_service_sets_the_spool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(MultiPartParser, "spool_max_size", 1024 * 1024)  # Starlette's own
    photo = os.urandom(1_800_000)
    rolled, data = _parse(photo)
    assert rolled and data == photo  # Starlette alone: past 1 MB, to a temporary file
    spool_uploads_in_memory(15 * 1024 * 1024 + 1)
    assert MultiPartParser.spool_max_size == 15 * 1024 * 1024 + 1
    rolled, data = _parse(photo)
    assert not rolled and data == photo
    # Never lowered: a smaller limit set later keeps the larger spool.
    spool_uploads_in_memory(1024)
    assert MultiPartParser.spool_max_size == 15 * 1024 * 1024 + 1


def test_the_app_sets_the_spool_to_the_photo_limit(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from serving.app import create_app
    from serving.core.settings import load_settings
    from serving.inspection.pipeline import InspectorStatus

    monkeypatch.setattr(MultiPartParser, "spool_max_size", 1024 * 1024)
    monkeypatch.setenv("KITO_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("KITO_MAX_PHOTO_BYTES", str(4 * 1024 * 1024))
    create_app(load_settings(), inspector_status=InspectorStatus(None, "not needed here"))
    assert MultiPartParser.spool_max_size == 4 * 1024 * 1024 + 1
