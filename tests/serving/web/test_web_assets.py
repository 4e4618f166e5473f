"""What the browser fetches besides the pages: favicon, manifest, service worker, the reason
catalogue; and the pages' policy allowing the manifest and the worker."""

from __future__ import annotations

import httpx
import pytest
from live_server import LiveServer

from qc_model.reason_messages import page_words

pytestmark = pytest.mark.browser


def test_favicon_manifest_worker_and_words_are_served(live: LiveServer) -> None:
    with httpx.Client(base_url=live.url) as client:
        icon = client.get("/favicon.ico")
        assert icon.status_code == 200 and icon.headers["content-type"] == "image/x-icon"
        assert icon.content[:4] == b"\x00\x00\x01\x00"  # an ICO file
        manifest = client.get("/app.webmanifest")
        assert manifest.headers["content-type"].startswith("application/manifest+json")
        body = manifest.json()
        assert body["start_url"] == "/app" and body["display"] == "standalone"
        for icon_entry in body["icons"]:
            assert client.get(icon_entry["src"]).status_code == 200
        worker = client.get("/app-sw.js")
        assert worker.status_code == 200 and "javascript" in worker.headers["content-type"]
        for line in worker.text.splitlines():  # every file the worker keeps for offline exists
            if line.strip().startswith("'/"):
                path = line.strip().strip("',")
                assert client.get(path).status_code == 200, path
        words = client.get("/app/words.json").json()
        assert words["phrases"] == page_words()
        assert words["designs"]["KQ-HOOP-BR-30"]["sw"] == "Hereni za duara za shaba, mm 30"
        csp = client.get("/app").headers["content-security-policy"]
        assert "worker-src 'self'" in csp and "manifest-src 'self'" in csp
