"""Peak memory of `kito serve` under the issue 28 probe: small PNGs of 8000 x 7999 px (64 MP,
under the pixel limit, about 60 kB each), six in one request, `--requests` such requests at once.

    .venv/bin/python bench/bench_decode_memory.py                      # this tree
    .venv/bin/python bench/bench_decode_memory.py --source /tmp/base   # another tree, e.g. main

starts the service of `--source` (a real uvicorn process, SQLite, a temporary data dir, the
bundled model), samples its RSS every 10 ms with psutil while the requests run, and prints the
RSS before, the peak, the answers and how long they took. Recorded in docs/RELIABILITY.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import httpx
import numpy as np
import psutil
from tqdm import tqdm

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serving import free_port, make_token, start_service, wait_ready  # noqa: E402


def probe_pngs(n: int, w: int = 8000, h: int = 7999) -> list[bytes]:
    out = []
    for i in tqdm(range(n), desc="encoding 64 MP PNGs", unit="png"):
        img = np.full((h, w, 3), 200, np.uint8)
        cv2.circle(img, (w // 2 + 40 * i, h // 2), 900, (30, 60, 120), -1)
        out.append(bytes(cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 9])[1]))
        del img
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=REPO, help="source tree whose service runs")
    ap.add_argument("--model", type=Path, default=REPO / "models" / "default")
    ap.add_argument("--photos", type=int, default=6)
    ap.add_argument("--requests", type=int, default=1, help="requests sent at once")
    ap.add_argument("--timeline", action="store_true", help="print RSS over time")
    args = ap.parse_args()
    pngs = probe_pngs(args.photos)
    kb = sum(map(len, pngs)) / args.photos / 1024
    print(f"{args.photos} PNGs of 8000x7999 px, {kb:.0f} kB each")
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = {
            **os.environ,
            "PYTHONPATH": str(args.source),
            "KITO_DATA_DIR": str(Path(tmp) / "data"),
            "KITO_MODEL_DIR": str(args.model),
            "KITO_PORT": str(port),
            "KITO_LOG_LEVEL": "warning",
            "KITO_AUDIT_SAMPLE_RATE": "0",
        }
        proc = start_service(env, Path(tmp) / "serve.log")
        try:
            base = f"http://127.0.0.1:{port}"
            wait_ready(base, proc)
            token = make_token(env)
            server = psutil.Process(proc.pid)
            time.sleep(1.0)
            before = server.memory_info().rss
            peak = [before]
            timeline: list[tuple[float, int]] = []
            done = threading.Event()

            def sample() -> None:
                t_start = time.monotonic()
                while not done.is_set():
                    try:
                        rss = server.memory_info().rss
                    except psutil.Error:
                        return
                    peak[0] = max(peak[0], rss)
                    timeline.append((time.monotonic() - t_start, rss))
                    time.sleep(0.01)

            answers: list[str] = []

            def upload(i: int) -> None:
                files = [("photos", (f"{j}.png", b, "image/png")) for j, b in enumerate(pngs)]
                r = httpx.post(
                    f"{base}/api/v1/inspections",
                    headers={"Authorization": f"Bearer {token}"},
                    data={"design_id": "KQ-HOOP-BR-30", "piece_id": f"P{i}"},
                    files=files,
                    timeout=300,
                )
                body = r.json()
                what = (
                    (body.get("error") or {}).get("code")
                    or body.get("verdict")
                    or body.get("status")
                )
                answers.append(f"{r.status_code} {what} ({r.headers.get('server-timing')})")

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            t0 = time.monotonic()
            threads = [threading.Thread(target=upload, args=(i,)) for i in range(args.requests)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.monotonic() - t0
            time.sleep(0.5)
            done.set()
            sampler.join()
            mb = 1024 * 1024
            print(f"source {args.source}")
            print(f"answers: {', '.join(answers)} in {elapsed:.1f} s")
            print(f"server RSS before {before / mb:.0f} MB, peak {peak[0] / mb:.0f} MB")
            if args.timeline:
                for t, rss in timeline[:: max(1, len(timeline) // 40)]:
                    print(f"  {t:6.2f} s  {rss / mb:6.0f} MB")
        finally:
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
