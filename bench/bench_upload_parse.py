"""CPU of parsing one photo upload (multipart form), Starlette's 1 MB spool against the service's.

    .venv/bin/python bench/bench_upload_parse.py --mb 1.8 --runs 40

Builds a multipart body with one photo of `--mb` MB (random bytes: the parser does not look
inside) and a design id, feeds it to Starlette's form parser in 64 KB chunks as uvicorn does, and
reads the photo back as the upload route does, `--runs` times with each spool size: Starlette's
own 1 MB (a larger file rolls to a temporary file and every later chunk is written through the
thread pool) and the service's (`serving.core.limits.spool_uploads_in_memory`: the photo limit,
kept in memory). Prints process CPU ms per upload; docs/BENCHMARKS.md records the result.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from starlette.formparsers import MultiPartParser
from starlette.requests import Request

BOUNDARY = b"kito-bench-boundary"


def body(photo: bytes) -> bytes:
    return (
        b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="design_id"\r\n\r\nKQ-X\r\n'
        + b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="photos"; '
        b'filename="p.jpg"\r\nContent-Type: image/jpeg\r\n\r\n' + photo + b"\r\n--" + BOUNDARY
        + b"--\r\n"
    )  # fmt: skip


async def parse_once(data: bytes) -> int:
    chunks = iter([data[i : i + 65536] for i in range(0, len(data), 65536)] + [b""])

    async def receive() -> dict[str, object]:
        chunk = next(chunks)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunk)}

    headers = [(b"content-type", b"multipart/form-data; boundary=" + BOUNDARY)]
    form = await Request({"type": "http", "method": "POST", "headers": headers}, receive).form()
    upload = form["photos"]
    assert not isinstance(upload, str)
    n = len(upload.file.read())
    await form.close()
    return n


async def cpu_ms(data: bytes, runs: int) -> float:
    await parse_once(data)  # warm-up
    t0 = time.process_time()
    for _ in range(runs):
        await parse_once(data)
    return (time.process_time() - t0) * 1e3 / runs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mb", type=float, default=1.8, help="photo size (a 12 MP JPEG: 1-5 MB)")
    p.add_argument("--runs", type=int, default=40)
    p.add_argument("--limit-mb", type=float, default=15.0, help="KITO_MAX_PHOTO_BYTES in MB")
    args = p.parse_args(argv)
    data = body(os.urandom(int(args.mb * 1e6)))
    print(f"one {args.mb} MB photo a request, {args.runs} requests, 64 KB chunks")
    print("| spool | CPU ms per upload |\n| --- | ---: |")
    for name, size in (
        ("Starlette's 1 MB (to a temporary file)", 1024 * 1024),
        (f"the service's {args.limit_mb:g} MB (in memory)", int(args.limit_mb * 1024 * 1024) + 1),
    ):
        MultiPartParser.spool_max_size = size
        print(f"| {name} | {asyncio.run(cpu_ms(data, args.runs)):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
