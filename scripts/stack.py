"""The scaled-out stack on one machine, on loopback: N `kito serve` replicas behind nginx, on one
PostgreSQL database and one S3 bucket (SeaweedFS started here unless --s3-endpoint names one).

    .venv/bin/python scripts/stack.py --replicas 2
    .venv/bin/python scripts/stack.py --replicas 3 \\
        --database-url postgresql+psycopg://kito@db/kito \\
        --s3-endpoint http://10.0.0.5:8333 --bucket kito-photos

prints the proxy's URL and runs until Ctrl-C. The same layout on several machines, with nginx
and systemd, is in deploy/ and docs/DEPLOY.md. The stack tests and bench/bench_load.py use the
`Stack` class below.
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seaweedfs import ACCESS_KEY, SECRET_KEY, SeaweedFS, free_ports

REPO = Path(__file__).resolve().parent.parent
_UPSTREAM = re.compile(r"upstream=(\S+)")


class Replica:
    """One `kito serve` process; `kill` is SIGKILL (no shutdown code runs)."""

    def __init__(self, name: str, folder: Path, env: dict[str, str]) -> None:
        self.name, self.folder = name, folder
        self.port = free_ports(1)[0]
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {**env, "KITO_PORT": str(self.port), "KITO_DATA_DIR": str(folder)}
        self.log = folder.parent / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "kito", "serve"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.folder,
            )

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.tail()}")
            try:
                if httpx.get(f"{self.base}/readyz", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready in {timeout_s:.0f} s:\n{self.tail()}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""


NGINX_CONF = """\
{user}worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    log_format kito '$remote_addr "$request" $status upstream=$upstream_addr $request_time';
    access_log {dir}/access.log kito;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
{body}
}}
"""


def render_nginx(ports: list[int], listen: str, include: Path) -> str:
    """The `http` body shared with deploy/nginx/kito.conf (which is the file included)."""
    servers = "\n".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;" for p in ports)
    text = include.read_text()
    text = re.sub(
        r"(?s)upstream kito \{.*?\n\}",
        f"upstream kito {{\n{servers}\n    keepalive 32;\n}}",
        text,
    )
    return text.replace("listen 443 ssl;", f"listen {listen};").replace(
        "    include /etc/nginx/kito-tls.conf;\n", ""
    )


class Nginx:
    def __init__(self, folder: Path, ports: list[int]) -> None:
        self.folder = folder
        self.port = free_ports(1)[0]
        self.base = f"http://127.0.0.1:{self.port}"
        self.ports = ports
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        user = f"user {getpass.getuser()};\n" if os.geteuid() == 0 else ""
        body = render_nginx(self.ports, f"127.0.0.1:{self.port}", REPO / "deploy/nginx/kito.conf")
        conf = self.folder / "nginx.conf"
        conf.write_text(NGINX_CONF.format(user=user, dir=self.folder, body=body))
        binary = os.environ.get("NGINX", "/usr/sbin/nginx")
        if not Path(binary).exists():
            raise FileNotFoundError("nginx (apt-get install nginx)")
        args = [binary, "-e", str(self.folder / "error.log"), "-p", str(self.folder)]
        subprocess.run([*args, "-t", "-q", "-c", str(conf)], check=True)
        self.proc = subprocess.Popen([*args, "-c", str(conf), "-g", "daemon off;"])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.base}/healthz", timeout=1.0)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"nginx did not answer: {self.error_log()}")

    def upstreams(self, request: str = "") -> Counter[str]:
        """How many requests (those starting with `request`, e.g. "POST /api/v1/inspections")
        each replica answered, from the access log."""
        log = self.folder / "access.log"
        lines = log.read_text().splitlines() if log.exists() else []
        return Counter(
            m.group(1)
            for line in lines
            if f'"{request}' in line and (m := _UPSTREAM.search(line)) and m.group(1) != "-"
        )

    def error_log(self) -> str:
        log = self.folder / "error.log"
        return log.read_text()[-3000:] if log.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: finish open requests
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(20)


@dataclass
class Stack:
    """`up()` starts S3 (if no endpoint given), migrates once, starts the replicas and nginx;
    `down()` stops them. `settings` are extra KITO_* values (lower case, no prefix)."""

    folder: Path
    database_url: str
    replicas: int = 2
    s3: dict[str, str] | None = None  # storage_url, s3_endpoint_url, keys; None: SeaweedFS here
    settings: dict[str, Any] = field(default_factory=dict)
    seaweedfs: SeaweedFS | None = None
    members: list[Replica] = field(default_factory=list)
    nginx: Nginx | None = None

    @property
    def url(self) -> str:
        assert self.nginx is not None
        return self.nginx.base

    def env(self) -> dict[str, str]:
        if self.s3 is None:
            self.seaweedfs = SeaweedFS(self.folder / "seaweedfs")
            self.seaweedfs.start()
            self.s3 = self.seaweedfs.settings("kito/")
        values = {
            "database_url": self.database_url,
            "migrate_on_start": "false",  # migrated once, before the replicas start
            # Only the proxy's forwarded headers count (money's setting; ignored until then).
            "trusted_proxies": "127.0.0.1",
            "log_level": "warning",
            **self.s3,
            **{k: str(v) for k, v in self.settings.items()},
        }
        env = {k: v for k, v in os.environ.items() if not k.startswith("KITO_")}
        env["PYTHONPATH"] = str(REPO)
        env.update({f"KITO_{k.upper()}": v for k, v in values.items()})
        return env

    def up(self) -> Stack:
        self.folder.mkdir(parents=True, exist_ok=True)
        env = self.env()
        subprocess.run(
            [sys.executable, "-m", "kito", "db", "upgrade"],
            env={**env, "KITO_DATA_DIR": str(self.folder / "migrate")},
            check=True,
            capture_output=True,
        )
        self.members = [
            Replica(f"replica-{i}", self.folder / f"replica-{i}", env) for i in range(self.replicas)
        ]
        for r in self.members:
            r.start()
        for r in self.members:
            r.wait_ready()
        self.nginx = Nginx(self.folder / "nginx", [r.port for r in self.members])
        self.nginx.start()
        return self

    def down(self) -> None:
        if self.nginx is not None:
            self.nginx.stop()
        for r in self.members:
            r.stop()
        if self.seaweedfs is not None:
            self.seaweedfs.stop()

    def __enter__(self) -> Stack:
        try:
            return self.up()
        except BaseException:
            self.down()
            raise

    def __exit__(self, *_: object) -> None:
        self.down()


def ensure_database(url: str, admin: str) -> None:
    """Create the database named in `url` on the server `admin` reaches, if it is missing."""
    import psycopg

    name = url.rsplit("/", 1)[1].split("?")[0]
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return
        conn.execute(f'CREATE DATABASE "{name}"')


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--replicas", type=int, default=2)
    p.add_argument("--folder", type=Path, default=Path("kito-stack"))
    p.add_argument(
        "--database-url",
        default=f"postgresql+psycopg://{getpass.getuser()}@127.0.0.1:5432/kito_stack",
    )
    p.add_argument("--pg-admin", default="host=127.0.0.1 port=5432 dbname=postgres")
    p.add_argument("--s3-endpoint", help="an S3 endpoint to use instead of a local SeaweedFS")
    p.add_argument("--bucket", default="kito")
    p.add_argument("--model-dir", type=Path, help="KITO_MODEL_DIR (default: the bundled model)")
    args = p.parse_args()
    if args.replicas < 1:
        p.error("--replicas must be at least 1")
    ensure_database(args.database_url, args.pg_admin)
    s3 = None
    if args.s3_endpoint:
        s3 = {
            "storage_url": f"s3://{args.bucket}/kito",
            "s3_endpoint_url": args.s3_endpoint,
            **{k: os.environ[v] for k, v in _KEYS.items() if v in os.environ},
        }
    settings = {"model_dir": args.model_dir} if args.model_dir else {}
    stack = Stack(args.folder.resolve(), args.database_url, args.replicas, s3, settings)
    with stack:
        for r in stack.members:
            print(f"{r.name}: {r.base} (log {r.log})")
        if stack.seaweedfs is not None:
            print(f"S3: {stack.seaweedfs.endpoint} key {ACCESS_KEY} / {SECRET_KEY}")
        print(f"Kito QC through nginx: {stack.url}   (Ctrl-C stops everything)")
        try:
            while all(r.proc is not None and r.proc.poll() is None for r in stack.members):
                time.sleep(1)
        except KeyboardInterrupt:
            return 0
    print("a replica exited; see its log", file=sys.stderr)
    return 1


_KEYS = {"s3_access_key_id": "AWS_ACCESS_KEY_ID", "s3_secret_access_key": "AWS_SECRET_ACCESS_KEY"}

if __name__ == "__main__":
    sys.exit(main())
