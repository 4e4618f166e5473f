"""`kito demo`: the README's main command ends in a seeded, running service."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import json, sys
from kito.demo import run_demo
from serving.core.settings import load_settings
lines = []
r = run_demo(load_settings(), serve_forever=False, echo=lines.append)
torch = "torch" in sys.modules
# The demo's server has stopped; read what it stored through a fresh app on the same data.
from fastapi.testclient import TestClient
from serving.app import create_app
client = TestClient(create_app(load_settings()))
h = {"Authorization": "Bearer " + r.tokens["qc"]}
order = client.get("/api/v1/orders/" + r.order_id, headers=h).json()
queue = client.get("/api/v1/reviews", headers=h).json()
print(json.dumps({"verdicts": r.verdicts, "order": order, "queue": queue["count"],
                  "torch": torch, "lines": lines}))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_demo_seeds_an_order_with_pass_fail_and_retake(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "KITO_DATA_DIR": str(tmp_path / "data"),
        "KITO_PORT": str(_free_port()),
        "KITO_AUDIT_SAMPLE_RATE": "0",
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert sorted(out["verdicts"].values()) == ["fail", "pass", "retake"]
    pieces = {p["piece_id"]: p for p in out["order"]["pieces"]}
    states = {pid: pieces[pid]["state"] for pid in out["verdicts"]}
    passed = next(pid for pid, v in out["verdicts"].items() if v == "pass")
    assert states[passed] == "accepted" and out["order"]["payout"] is None
    assert out["queue"] == 1  # the failed piece waits for QC; a retake does not enter the queue
    assert not out["torch"], "the demo's service process must not import torch"
    text = "\n".join(out["lines"])
    assert "/app" in text and "/qc" in text and text.count("kito_") == 3
    # The guide matches the pages and never tells QC to approve the failed piece.
    failed = next(pid for pid, v in out["verdicts"].items() if v == "fail")
    guide = next(line for line in out["lines"] if line.strip().startswith(f"{failed}: artisan"))
    assert "reject (R)" in guide and "approve" not in guide.lower(), guide
    assert "Needs a new photo" in text and "Payment pending" in text
