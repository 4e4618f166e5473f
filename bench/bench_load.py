"""Mixed traffic against `kito serve`: uploads, reads and QC decisions from several clients.

    .venv/bin/python bench/bench_load.py --clients 8 --duration 60
    .venv/bin/python bench/bench_load.py --clients 8 --duration 300 --overload-clients 0
    .venv/bin/python bench/bench_load.py --replicas 2 --clients 8 --duration 60

starts `kito serve` (a real uvicorn process on loopback, SQLite, the bundled model, a temporary
data dir) or, with --replicas N, the scaled-out stack of scripts/stack.py: N replicas behind
nginx on a new PostgreSQL database (dropped after) and a SeaweedFS bucket, all on loopback.
It creates users (the last two clients are QC staff, the others artisans with an
order each), warms up, then runs every client in a closed loop for --duration seconds:


- artisans: upload a photo (1600 px synthetic phone JPEG, its own piece and Idempotency-Key),
  list their inspections, read one, download one of its photos, list their orders;
- QC: list the review queue, read an item, decide an open one (each QC decides its own share
  of the queue, so two never race for one item), read the queue metrics.

It prints p50/p99 and errors per endpoint (an error is any answer but the expected 200/201, a
timeout or a dropped connection), throughput, and the service's resident memory (RSS, from
/proc, summed over the replicas) sampled every second: the growth from the 10 % mark of the run
to its end. Then, with --overload-clients, as many clients upload without pause for
--overload-duration seconds: every answer must be 201 or 503 with Retry-After (the bounded upload
queue), never a timeout.
Results are recorded in docs/BENCHMARKS.md and docs/RELIABILITY.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serving import (
    REPO,
    cpu_seconds,
    free_port,
    make_token,
    phone_jpegs,
    start_service,
    wait_ready,
)
from load_traffic import Stats, Traffic

ORDER_PIECES = 20  # each artisan's order, so that their order list has something to show


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def sample_rss(pids: list[int], stop: threading.Event, out: list[tuple[float, float]]) -> None:
    t0 = time.monotonic()
    while not stop.wait(1.0):
        out.append((time.monotonic() - t0, sum(rss_mb(pid) for pid in pids)))


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def make_token_role(env: dict[str, str], role: str) -> str:
    import subprocess

    out = subprocess.run(
        [
            str(Path(sys.executable).parent / "kito"),
            "users",
            "create",
            "--name",
            f"bench {role}",
            "--role",
            role,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return out.stdout.strip().splitlines()[-1]


def run_mixed(
    base: str, artisans: list[str], qcs: list[str], photos, duration: float, pids: list[int]
):
    stats = Stats()
    traffic = Traffic(base, photos, stats)
    staff = {"Authorization": f"Bearer {qcs[0]}"}
    orders = []
    with httpx.Client() as http:
        for i, tok in enumerate(artisans):
            me = http.get(f"{base}/api/v1/users/me", headers={"Authorization": f"Bearer {tok}"})
            order_id = f"ORD-LOAD-{i}"
            body = {
                "id": order_id,
                "artisan_id": me.json()["id"],
                "pieces": [
                    {"piece_id": f"P{k}", "design_id": photos[0][0], "payout_minor": 100}
                    for k in range(ORDER_PIECES)
                ],
            }
            assert http.post(f"{base}/api/v1/orders", headers=staff, json=body).status_code == 201
            orders.append(order_id)
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=traffic.artisan,
            args=({"Authorization": f"Bearer {tok}"}, stop, i),
        )
        for i, tok in enumerate(artisans)
    ] + [
        threading.Thread(
            target=traffic.qc,
            args=({"Authorization": f"Bearer {tok}"}, k, len(qcs), stop, 100 + k),
        )
        for k, tok in enumerate(qcs)
    ]
    rss: list[tuple[float, float]] = []
    rss_stop = threading.Event()
    sampler = threading.Thread(target=sample_rss, args=(pids, rss_stop, rss))
    cpu0 = sum(cpu_seconds(pid) for pid in pids)
    t0 = time.perf_counter()
    sampler.start()
    for t in threads:
        t.start()
    stop.wait(duration)
    stop.set()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    rss_stop.set()
    sampler.join()
    return stats, wall, sum(cpu_seconds(pid) for pid in pids) - cpu0, rss


def report_mixed(
    stats: Stats, wall: float, cpu_s: float, rss: list[tuple[float, float]], duration: float
) -> int:
    total = sum(len(v) for v in stats.ms.values())
    n_err = sum(len(v) for v in stats.errors.values())
    uploads = stats.ms.get("POST /api/v1/inspections", [])
    n_up = len(uploads) - len(stats.errors.get("POST /api/v1/inspections", []))
    print(
        f"\nMixed traffic: {total} requests in {wall:.1f} s ({total / wall:.1f} req/s), "
        f"service CPU {cpu_s:.0f} s, errors {n_err}; {n_up} photos accepted "
        f"({n_up / wall:.2f} photos/s, upload p50 {pct(uploads, 50):.0f} ms, "
        f"p99 {pct(uploads, 99):.0f} ms)"
    )
    print("\n| endpoint | requests | errors | p50 ms | p99 ms | max ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name in sorted(stats.ms):
        ms = stats.ms[name]
        print(
            f"| {name} | {len(ms)} | {len(stats.errors[name])} | {pct(ms, 50):.0f} | "
            f"{pct(ms, 99):.0f} | {max(ms):.0f} |"
        )
    for name, errs in stats.errors.items():
        for e in errs[:3]:
            print(f"  error {name}: {e}")
    if rss:
        mark = next((mb for t, mb in rss if t >= 0.1 * duration), rss[0][1])
        end = rss[-1][1]
        peak = max(mb for _, mb in rss)
        print(
            f"\nRSS: {mark:.0f} MB at 10 % of the run, {end:.0f} MB at the end, peak {peak:.0f} MB;"
            f" growth {100 * (end - mark) / mark:+.1f} %"
        )
        step = max(1, len(rss) // 10)
        print("RSS samples (s: MB): " + ", ".join(f"{t:.0f}: {mb:.0f}" for t, mb in rss[::step]))
    return n_err


def run_overload(
    base: str, token: str, photos: list[tuple[str, bytes]], clients: int, duration: float
) -> tuple[dict[str, int], dict[str, list[float]]]:
    """Every client uploads in a loop, waiting only as long as a 503's Retry-After says.
    Returns the count of each kind of answer and the latencies of 201s and 503s."""
    counts: dict[str, int] = defaultdict(int)
    ms: dict[str, list[float]] = defaultdict(list)
    lock = threading.Lock()
    stop = threading.Event()
    headers = {"Authorization": f"Bearer {token}"}

    def hammer(k: int) -> None:
        n = 0
        with httpx.Client() as http:
            while not stop.is_set():
                n += 1
                design, data = photos[(k + n) % len(photos)]
                wait = 0.0
                t0 = time.perf_counter()
                try:
                    r = http.post(
                        f"{base}/api/v1/inspections",
                        headers={**headers, "Idempotency-Key": f"over-{k}-{n}"},
                        data={"design_id": design, "piece_id": f"O{k}-{n}"},
                        files=[("photos", ("o.jpg", data, "image/jpeg"))],
                        timeout=60.0,
                    )
                    key = str(r.status_code)
                    if r.status_code == 503:
                        retry = r.headers.get("retry-after")
                        key += " with Retry-After" if retry else " WITHOUT Retry-After"
                        wait = float(retry or 1)
                except httpx.TimeoutException:
                    key = "timeout"
                except httpx.HTTPError as exc:
                    key = type(exc).__name__
                with lock:
                    counts[key] += 1
                    ms[key.split()[0]].append((time.perf_counter() - t0) * 1e3)
                stop.wait(wait)

    threads = [threading.Thread(target=hammer, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    stop.wait(duration)
    stop.set()
    for t in threads:
        t.join()
    return dict(counts), dict(ms)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=8, help="the last two are QC staff")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of mixed traffic")
    p.add_argument("--size", type=int, default=1600, help="photo long side, px")
    p.add_argument("--distinct", type=int, default=6, help="distinct photos, cycled")
    p.add_argument("--overload-clients", type=int, default=48)
    p.add_argument("--overload-duration", type=float, default=20.0)
    p.add_argument("--model", type=Path, default=REPO / "models" / "default")
    p.add_argument(
        "--replicas", type=int, default=0, help="N > 0: N replicas behind nginx (scripts/stack.py)"
    )
    p.add_argument("--pg-admin", default="host=127.0.0.1 port=5432 dbname=test")
    args = p.parse_args(argv)
    if args.clients < 3:
        p.error("--clients must be at least 3 (two are QC)")
    if args.replicas:
        return run_stack(args)

    with tempfile.TemporaryDirectory(prefix="kito-bench-load-") as tmp_name:
        tmp = Path(tmp_name)
        photos = phone_jpegs(args.distinct, args.size, seed=5)
        port = free_port()
        env = {
            **os.environ,
            "KITO_DATA_DIR": str(tmp / "data"),
            "KITO_MODEL_DIR": str(args.model),
            "KITO_PORT": str(port),
            "KITO_LOG_LEVEL": "warning",
        }
        artisans = [make_token(env) for _ in range(args.clients - 2)]
        qcs = [make_token_role(env, "qc") for _ in range(2)]
        proc = start_service(env, tmp / "serve.log")
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base, proc)
            errors = measure(base, artisans, qcs, photos, [proc.pid], args)
        finally:
            proc.terminate()
            proc.wait(30)
    return 1 if errors else 0


def measure(base: str, artisans, qcs, photos, pids: list[int], args: argparse.Namespace) -> int:
    with httpx.Client() as http:  # warm-up: lazily imported code, first inference
        for i in range(4 * max(1, len(pids))):
            design, data = photos[i % len(photos)]
            http.post(
                f"{base}/api/v1/inspections",
                headers={"Authorization": f"Bearer {artisans[0]}"},
                data={"design_id": design, "piece_id": f"W{i}"},
                files=[("photos", ("w.jpg", data, "image/jpeg"))],
                timeout=120,
            )
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(
        f"{os.cpu_count()} cores, load average before the run: {load}; photos "
        f"{args.size} px ({', '.join(f'{len(d) / 1e6:.2f} MB' for _, d in photos)})"
    )
    stats, wall, cpu_s, rss = run_mixed(base, artisans, qcs, photos, args.duration, pids)
    errors = report_mixed(stats, wall, cpu_s, rss, args.duration)
    if args.overload_clients:
        counts, ms = run_overload(
            base, artisans[0], photos, args.overload_clients, args.overload_duration
        )
        print(
            f"\nOverload: {args.overload_clients} clients uploading for "
            f"{args.overload_duration:.0f} s, pausing only as a 503's Retry-After says: "
            + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
        )
        print(f"  accepted: {counts.get('201', 0) / args.overload_duration:.2f} photos/s")
        for k, v in sorted(ms.items()):
            print(f"  {k} answers: p50 {pct(v, 50):.0f} ms, p99 {pct(v, 99):.0f} ms")
        alive = httpx.get(f"{base}/healthz", timeout=10).status_code == 200
        print(f"service alive after the overload: {alive}")
    return errors


def run_stack(args: argparse.Namespace) -> int:
    """The same traffic through nginx to `args.replicas` replicas (scripts/stack.py)."""
    sys.path.insert(0, str(REPO / "scripts"))
    import psycopg
    from stack import Stack

    name = f"kito_bench_{os.getpid()}"
    with psycopg.connect(args.pg_admin, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        info = admin.info
        url = f"postgresql+psycopg://{info.user}@{info.host}:{info.port}/{name}"
        try:
            with tempfile.TemporaryDirectory(prefix="kito-bench-stack-") as tmp_name:
                stack = Stack(
                    Path(tmp_name), url, args.replicas, settings={"model_dir": args.model}
                )
                with stack:
                    env = stack.members[0].env
                    artisans = [make_token(env) for _ in range(args.clients - 2)]
                    qcs = [make_token_role(env, "qc") for _ in range(2)]
                    photos = phone_jpegs(args.distinct, args.size, seed=5)
                    pids = [r.proc.pid for r in stack.members if r.proc is not None]
                    print(f"{args.replicas} replicas behind nginx at {stack.url}")
                    errors = measure(stack.url, artisans, qcs, photos, pids, args)
                    assert stack.nginx is not None
                    spread = stack.nginx.upstreams("POST /api/v1/inspections")
                    print(f"uploads per replica: {dict(spread)}")
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
