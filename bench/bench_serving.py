"""End-to-end benchmark of the inspection service over HTTP with 12 MP phone-like JPEGs.

    .venv/bin/python bench/bench_serving.py --model models/default --photos 40 --concurrent 64
    .venv/bin/python bench/bench_serving.py --baseline /path/to/main --rounds 2   # A/B

starts `kito serve` (a real uvicorn process on loopback, SQLite and a temporary data dir),
creates an artisan token, renders phone-like JPEGs with the synthetic renderer (4032 px long
side), then measures one client uploading one photo at a time (p50/p99 latency) and 8 clients
at once (photos/s, p50/p99), counts errors, and reports the per-stage timings the service
stored with each inspection (and the database write, from the Server-Timing header).
Without --model the service's default package is served (models/default, or
models/default-int8 on a CPU with VNNI); where there is none, a tiny package is exported to a
temp dir the way tests/serving does (and the output says so). With --baseline, a second source
tree's service (e.g. main's checkout) is measured the same way, alternating with this one, and
the medians are printed side by side; without --model each tree serves its own default package.
Results are recorded in docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np

REPO = Path(__file__).resolve().parent.parent
# Stage names as stored in the inspection's timings_ms (decode/store by intake, model.* by the
# inspector) and "db" from the Server-Timing header.
STAGES = [
    ("wait for a CPU slot", "queue"),
    ("decode", "decode"),
    ("gate", "model.gate"),
    ("model (crop + ONNX)", "model.model"),
    ("spec checks", "model.spec"),
    ("verdict", "model.verdict"),
    ("storage", "store"),
    ("db write", "db"),
    ("server total", "total"),
]


def phone_jpegs(count: int, size: int, seed: int) -> list[tuple[str, bytes]]:
    """(design id, JPEG bytes) of synthetic photos on the mat at `size` px, quality 92."""
    from qc_model.catalog import default_catalog_dir
    from training.synth.designs import load_designs
    from training.synth.photo import make_item, render_photo

    designs = load_designs(default_catalog_dir())
    out = []
    for i in range(count):
        design = designs[(seed + 5 * i) % len(designs)]
        item = make_item(design, seed, i, 0.0)
        photo = render_photo(item, seed, i, 0, size, 0.0, ())
        ok, buf = cv2.imencode(".jpg", photo.image, [cv2.IMWRITE_JPEG_QUALITY, 92])
        assert ok
        out.append((design.id, buf.tobytes()))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tiny_model(tmp: Path) -> Path:
    sys.path.insert(0, str(REPO / "tests" / "serving"))
    from model_package import build_tiny_package

    return Path(build_tiny_package(tmp / "tiny"))


def start_service(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    kito = Path(sys.executable).parent / "kito"
    with log.open("wb") as f:
        return subprocess.Popen([str(kito), "serve"], env=env, stdout=f, stderr=subprocess.STDOUT)


def wait_ready(base: str, proc: subprocess.Popen[bytes], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"kito serve exited with {proc.returncode}")
        try:
            r = httpx.get(f"{base}/readyz", timeout=2.0)
            if r.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"service not ready after {timeout_s:.0f} s")


def make_token(env: dict[str, str]) -> str:
    out = subprocess.run(
        [str(Path(sys.executable).parent / "kito"), "users", "create", "--name", "bench"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return out.stdout.strip().splitlines()[-1]


def server_timing(header: str) -> dict[str, float]:
    out = {}
    for part in header.split(","):
        name, _, dur = part.strip().partition(";dur=")
        if dur:
            out[name.replace("-", ".")] = float(dur)
    return out


class Runner:
    """Uploads photos and keeps each request's latency, status and stage timings."""

    def __init__(self, base: str, token: str, photos: list[tuple[str, bytes]]) -> None:
        self.base, self.photos = base, photos
        self.headers = {"Authorization": f"Bearer {token}"}
        self.lock = threading.Lock()
        self.counter = 0

    def upload(self, client: httpx.Client, run: str) -> dict[str, Any]:
        with self.lock:
            n = self.counter
            self.counter += 1
        design, data = self.photos[n % len(self.photos)]
        t0 = time.perf_counter()
        try:
            r = client.post(
                f"{self.base}/api/v1/inspections",
                headers={**self.headers, "Idempotency-Key": f"bench-{run}-{n}"},
                data={"design_id": design, "piece_id": f"B-{run}-{n}"},
                files=[("photos", (f"p{n}.jpg", data, "image/jpeg"))],
                timeout=120.0,
            )
        except httpx.HTTPError as exc:
            return {"ms": (time.perf_counter() - t0) * 1e3, "ok": False, "error": repr(exc)}
        ms = (time.perf_counter() - t0) * 1e3
        if r.status_code != 201:
            return {"ms": ms, "ok": False, "error": f"{r.status_code} {r.text[:200]}"}
        body = r.json()
        stages = {**body["timings_ms"], **server_timing(r.headers.get("Server-Timing", ""))}
        ok = body["status"] == "inspected"
        return {"ms": ms, "ok": ok, "verdict": body["verdict"], "stages": stages, "error": None}

    def sequential(self, n: int) -> tuple[list[dict[str, Any]], float]:
        with httpx.Client() as c:
            t0 = time.perf_counter()
            out = [self.upload(c, "seq") for _ in range(n)]
            return out, time.perf_counter() - t0

    def concurrent(self, n: int, clients: int) -> tuple[list[dict[str, Any]], float]:
        results: list[dict[str, Any]] = []
        per_client = [n // clients + (1 if i < n % clients else 0) for i in range(clients)]

        def work(k: int) -> None:
            with httpx.Client() as c:
                for _ in range(k):
                    res = self.upload(c, "conc")
                    with self.lock:
                        results.append(res)

        threads = [threading.Thread(target=work, args=(k,)) for k in per_client]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return results, time.perf_counter() - t0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the service process so far: the figure that does not depend
    on what else runs on a shared machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def report(name: str, results: list[dict[str, Any]], wall_s: float, cpu_s: float) -> None:
    ms = [r["ms"] for r in results]
    errors = [r for r in results if not r["ok"]]
    verdicts: dict[str, int] = defaultdict(int)
    for r in results:
        verdicts[str(r.get("verdict"))] += 1
    print(f"\n{name}: {len(results)} uploads in {wall_s:.1f} s")
    print("| metric | value |\n| --- | ---: |")
    print(f"| throughput | {len(results) / wall_s:.2f} photos/s |")
    print(f"| latency p50 | {pct(ms, 50):.0f} ms |")
    print(f"| latency p99 | {pct(ms, 99):.0f} ms |")
    print(f"| server CPU per photo | {1e3 * cpu_s / len(results):.0f} ms |")
    print(f"| errors | {len(errors)} |")
    print(f"| verdicts | {', '.join(f'{k} {v}' for k, v in sorted(verdicts.items()))} |")
    for e in errors[:3]:
        print(f"  error: {e['error']}")
    print("\n| stage (server side) | p50 ms | p99 ms | share of total p50 |")
    print("| --- | ---: | ---: | ---: |")
    ok = [r["stages"] for r in results if r["ok"]]
    total = pct([s.get("total", np.nan) for s in ok], 50)
    for label, key in STAGES:
        vals = [s[key] for s in ok if key in s]
        share = f"{100 * pct(vals, 50) / total:.0f}%" if key != "total" and total else ""
        print(f"| {label} | {pct(vals, 50):.1f} | {pct(vals, 99):.1f} | {share} |")


def measure(
    args: argparse.Namespace,
    tmp: Path,
    model: Path,
    photos: list[tuple[str, bytes]],
    tree: Path | None,
) -> dict[str, float]:
    """Start the service (from `tree`'s source when given), run both loads, report, stop.
    Returns the headline numbers for the comparison table."""
    port = free_port()
    data = tmp / f"data-{port}"
    env = {
        **os.environ,
        "KITO_DATA_DIR": str(data),
        "KITO_MODEL_DIR": str(model),
        "KITO_HOST": "127.0.0.1",
        "KITO_PORT": str(port),
        "KITO_LOG_LEVEL": "warning",
        # Every client uploads with the one bench token from one address: the per-token (4)
        # and per-address (16) bounds would answer some uploads with 429 instead of measuring
        # them. Twice the clients: an answered upload is counted until its handler returns,
        # while its client may already have sent the next.
        "KITO_UPLOADS_PER_TOKEN": str(max(4, 2 * args.clients)),
        "KITO_UPLOADS_PER_ADDRESS": str(max(16, 2 * args.clients)),
    }
    if tree is not None:
        # The source tree's packages come before the installed (editable) ones.
        env["PYTHONPATH"] = str(tree)
    if args.decode_long_side:
        env["KITO_DECODE_LONG_SIDE"] = str(args.decode_long_side)
    token = make_token(env)
    proc = start_service(env, tmp / f"serve-{port}.log")
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, proc)
        runner = Runner(base, token, photos)
        runner.sequential(2)  # warm-up: first requests load lazily imported code
        load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
        print(f"\nservice code: {tree or REPO}")
        print(f"load average before the runs: {load} on {os.cpu_count()} cores")
        cpu0 = cpu_seconds(proc.pid)
        seq, seq_s = runner.sequential(args.photos)
        cpu1 = cpu_seconds(proc.pid)
        report("One client, sequential", seq, seq_s, cpu1 - cpu0)
        conc, conc_s = runner.concurrent(args.concurrent, args.clients)
        cpu2 = cpu_seconds(proc.pid)
        report(f"{args.clients} concurrent clients", conc, conc_s, cpu2 - cpu1)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    return {
        "p50_1": pct([r["ms"] for r in seq], 50),
        "cpu_1": 1e3 * (cpu1 - cpu0) / len(seq),
        "rate_n": len(conc) / conc_s,
        "p50_n": pct([r["ms"] for r in conc], 50),
        "p99_n": pct([r["ms"] for r in conc], 99),
        "cpu_n": 1e3 * (cpu2 - cpu1) / len(conc),
        "errors": float(sum(not r["ok"] for r in seq + conc)),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, help="model package (default: models/default)")
    p.add_argument("--photos", type=int, default=40, help="sequential uploads (one client)")
    p.add_argument("--concurrent", type=int, default=64, help="uploads by the parallel clients")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--size", type=int, default=4032, help="photo long side, px")
    p.add_argument("--distinct", type=int, default=4, help="distinct photos, cycled")
    p.add_argument("--decode-long-side", type=int, help="KITO_DECODE_LONG_SIDE for the service")
    p.add_argument("--seed", type=int, default=3)
    p.add_argument(
        "--baseline",
        type=Path,
        help="also run the service from this source tree (e.g. a checkout of main), alternating"
        " with this one on the same photos, and print both side by side",
    )
    p.add_argument("--rounds", type=int, default=1, help="with --baseline: alternations")
    args = p.parse_args(argv)
    if min(args.photos, args.concurrent, args.clients, args.distinct, args.rounds) < 1:
        p.error("--photos, --concurrent, --clients, --distinct and --rounds must be >= 1")
    if args.baseline is not None and not (args.baseline / "serving").is_dir():
        p.error(f"--baseline {args.baseline}: not a Kito QC source tree")

    with tempfile.TemporaryDirectory(prefix="kito-bench-serving-") as tmp_name:
        tmp = Path(tmp_name)
        model = args.model or served_by_default(REPO)
        if not model.is_dir():
            if args.model:
                p.error(f"--model {model}: no such directory")
            print(f"models/default does not exist: exported a tiny package to {tmp / 'tiny'}")
            model = tiny_model(tmp)
        print(f"model package: {model}")
        t0 = time.perf_counter()
        photos = phone_jpegs(args.distinct, args.size, args.seed)
        sizes = ", ".join(f"{len(d) / 1e6:.1f} MB" for _, d in photos)
        print(
            f"{len(photos)} JPEGs at {args.size} px long side ({sizes}) rendered in "
            f"{time.perf_counter() - t0:.0f} s; designs {', '.join(d for d, _ in photos)}"
        )
        if args.baseline is None:
            measure(args, tmp, model, photos, None)
            return 0
        runs: dict[str, list[dict[str, float]]] = {"baseline": [], "this tree": []}
        trees = {"baseline": args.baseline.resolve(), "this tree": REPO}
        # Without --model each tree serves the bundled package its service picks by default: a
        # change to the bundled packages or to that choice is part of what is compared.
        own = served_by_default(args.baseline.resolve())
        models = {"baseline": own if args.model is None and own.is_dir() else model}
        models["this tree"] = model
        print(f"baseline model package: {models['baseline']}")
        for i in range(args.rounds):
            # ABBA order: neither tree always runs right after the other's service.
            for name in sorted(trees, reverse=i % 2 == 1):
                runs[name].append(measure(args, tmp, models[name], photos, trees[name]))
        compare(runs, args.clients)
    return 0


def served_by_default(tree: Path) -> Path:
    """The model package `tree`'s service serves without KITO_MODEL_DIR (its own settings
    decide: the INT8 copy on a CPU with VNNI, where one is bundled)."""
    env = {k: v for k, v in os.environ.items() if k != "KITO_MODEL_DIR"}
    code = "from serving.core.settings import Settings; print(Settings().model_dir)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tree, env={**env, "PYTHONPATH": str(tree)},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return Path(out.stdout.strip().splitlines()[-1])


def compare(runs: dict[str, list[dict[str, float]]], clients: int) -> None:
    """Medians over the rounds, baseline and this tree side by side, and their ratio."""
    rows = [
        ("1 client p50 ms", "p50_1"),
        ("1 client server CPU ms/photo", "cpu_1"),
        (f"{clients} clients photos/s", "rate_n"),
        (f"{clients} clients p50 ms", "p50_n"),
        (f"{clients} clients p99 ms", "p99_n"),
        (f"{clients} clients server CPU ms/photo", "cpu_n"),
        ("errors (all runs)", "errors"),
    ]
    base, this = runs["baseline"], runs["this tree"]
    print(f"\nComparison, median of {len(base)} round(s) each:")
    print("| metric | baseline | this tree | this / baseline |\n| --- | ---: | ---: | ---: |")
    for label, key in rows:
        if key == "errors":
            b, t = sum(r[key] for r in base), sum(r[key] for r in this)
        else:
            b, t = (
                float(np.median([r[key] for r in base])),
                float(np.median([r[key] for r in this])),
            )
        ratio = f"{t / b:.2f}" if b else ""
        print(f"| {label} | {b:.1f} | {t:.1f} | {ratio} |")


if __name__ == "__main__":
    sys.exit(main())
