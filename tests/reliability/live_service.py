"""`kito serve` as a child process, for tests that need the real thing: a TCP port, uvicorn, and a
process that can be killed with SIGKILL and started again on the same database and photos."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy import func, select

from serving.core.auth import create_user
from serving.db.models import AuditEntry, Inspection, Order, Photo, ReviewDecision
from serving.db.session import make_engine, make_sessionmaker
from serving.store.fsck import FsckReport, fsck
from serving.store.storage import LocalObjectStore

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def fresh_postgres(admin_conninfo: str) -> Iterator[str]:
    """A new, empty PostgreSQL database on the test server; dropped (forcibly) afterwards."""
    name = f"kito_rel_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_conninfo, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        info = admin.info
        user = info.user or os.environ.get("USER", "postgres")
        try:
            yield f"postgresql+psycopg://{user}@{info.host}:{info.port}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Service:
    """One `kito serve` process. `start` waits until /healthz answers; `kill` sends SIGKILL (no
    shutdown code runs, as in a power cut of the process); `start` again reuses everything."""

    def __init__(
        self,
        data_dir: Path,
        database_url: str,
        catalog_dir: Path,
        *,
        direct_url: str | None = None,
        **settings: Any,
    ) -> None:
        """`database_url` is what the service uses; `direct_url` (default: the same) is how
        the test reads the database itself, e.g. around a proxy the test cuts."""
        self.data_dir = data_dir
        self.database_url = database_url
        self.direct_url = direct_url or database_url
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "KITO_DATA_DIR": str(data_dir),
            "KITO_DATABASE_URL": database_url,
            "KITO_CATALOG_DIR": str(catalog_dir),
            "KITO_MODEL_DIR": str(data_dir / "no-model"),
            "KITO_PORT": str(self.port),
            "KITO_AUDIT_SAMPLE_RATE": "0",
            "KITO_LOG_LEVEL": "warning",
            **{f"KITO_{k.upper()}": str(v) for k, v in settings.items()},
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir.parent / f"kito-serve-{self.port}.log"
        self.starts = 0
        self._engine = None

    # -- process ----------------------------------------------------------------------------
    def start(self, timeout_s: float = 90.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        with self.log.open("ab") as log:
            log.write(f"--- start {self.starts}\n".encode())
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "kito", "serve"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir.parent,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kito serve exited with {self.proc.returncode}:\n{self.tail()}")
            if self.alive():
                return
            time.sleep(0.1)
        raise RuntimeError(f"kito serve did not answer in {timeout_s:.0f} s:\n{self.tail()}")

    def alive(self) -> bool:
        try:
            r = httpx.get(f"{self.base}/healthz", timeout=2.0)
        except httpx.HTTPError:
            return False
        return r.status_code == 200 and r.json() == {"status": "ok"}

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""

    # -- the service's state, read directly -------------------------------------------------
    @property
    def engine(self):  # type: ignore[no-untyped-def]
        if self._engine is None:
            self._engine = make_engine(self.direct_url)
        return self._engine

    def session(self):  # type: ignore[no-untyped-def]
        return make_sessionmaker(self.engine)()

    @property
    def store(self) -> LocalObjectStore:
        return LocalObjectStore(self.data_dir / "photos")

    def user(self, role: str, name: str | None = None) -> tuple[int, dict[str, str]]:
        """A new user: (id, headers with its bearer token)."""
        with self.session() as s:
            user, token = create_user(s, name=name or role.title(), role=role)
            return user.id, {"Authorization": f"Bearer {token}"}

    def counts(self) -> dict[str, int]:
        """Rows and files that a refused request must not have added."""
        with self.session() as s:
            out = {
                table.__name__: s.scalar(select(func.count()).select_from(table)) or 0
                for table in (Inspection, Photo, Order, ReviewDecision, AuditEntry)
            }
        root = self.data_dir / "photos"
        out["photo files"] = sum(1 for p in root.rglob("*") if p.is_file()) if root.exists() else 0
        return out

    def fsck(self) -> FsckReport:
        with self.session() as s:
            return fsck(s, self.store)
