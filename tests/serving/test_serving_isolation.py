"""The service process never imports torch or training, and oversized bodies are refused early."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from fastapi.testclient import TestClient
from photo_samples import jpeg
from upload_helpers import counts, post

from serving.app import create_app
from serving.core.auth import create_user
from serving.core.settings import Settings


def test_no_torch_after_a_request(tmp_path: Path, catalog_dir: Path) -> None:
    # A fresh interpreter: this test process may have imported torch through other tests.
    script = textwrap.dedent(
        f"""
        import sys
        from fastapi.testclient import TestClient
        from serving.app import create_app
        from serving.core.settings import Settings
        s = Settings(data_dir={str(tmp_path)!r}, catalog_dir={str(catalog_dir)!r})
        with TestClient(create_app(s)) as c:
            assert c.get("/readyz").status_code in (200, 503)
            assert c.get("/api/v1/inspections").status_code == 401
        bad = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "training"))
        assert not bad, bad
        print("clean")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "clean"


def test_oversized_body_is_413_json(tmp_path: Path, catalog_dir: Path) -> None:
    s = Settings(data_dir=tmp_path, catalog_dir=catalog_dir, max_photos=1, max_photo_bytes=100_000)
    app = create_app(s)
    with TestClient(app) as c:
        with app.state.sessionmaker() as session:
            _, token = create_user(session, name="A", role="artisan")
        headers = {"Authorization": f"Bearer {token}"}
        big = b"\xff\xd8\xff" + b"\0" * 600_000
        r = post(c, headers, [("a.jpg", big, "image/jpeg")])
        assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large", r.text
        assert counts(c) == (0, 0, 0)
        assert post(c, headers, [("a.jpg", jpeg(), "image/jpeg")]).status_code == 201


def test_chunked_body_over_the_limit_is_413_json(tmp_path: Path, catalog_dir: Path) -> None:
    s = Settings(data_dir=tmp_path, catalog_dir=catalog_dir, max_photos=1, max_photo_bytes=100_000)
    app = create_app(s)
    with TestClient(app) as c:
        with app.state.sessionmaker() as session:
            _, token = create_user(session, name="A", role="artisan")
        boundary = "kitoboundary"
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="photos"; filename="a.jpg"'
            "\r\nContent-Type: image/jpeg\r\n\r\n"
        ).encode()
        chunks = iter([head] + [b"\0" * 65536] * 10)  # no Content-Length: sent chunked
        r = c.post(
            "/api/v1/inspections",
            content=chunks,
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": f"multipart/form-data; boundary={boundary}",
            },
        )
        assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large", r.text
        assert counts(c) == (0, 0, 0)
