"""`kito fsck`: clean after real flows; each kind of damage found, named, and exit code 1."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from order_helpers import make_order, submit
from photo_samples import jpeg
from sqlalchemy import delete, update
from typer.testing import CliRunner
from upload_helpers import post

from kito.cli import app as cli
from serving.core.settings import Settings
from serving.db.models import Inspection, Payout, PayoutOutbox, Photo, ReviewItem
from serving.store.fsck import FsckReport, fsck


@pytest.fixture
def world(client: TestClient, make_user, inspector) -> dict[str, str]:
    """Two plain uploads, one failed piece in the review queue, one paid order."""
    artisan_id, artisan = make_user()
    _, staff = make_user("qc", "Q")
    plain = post(client, artisan, [("a.jpg", jpeg(330, 240), "image/jpeg")]).json()
    post(client, artisan, [("a.jpg", jpeg(331, 240), "image/jpeg")], piece_id="P-2")
    inspector.verdict = "fail"
    failed = post(client, artisan, [("a.jpg", jpeg(332, 240), "image/jpeg")], piece_id="P-3")
    inspector.verdict = "pass"
    order = make_order(client, staff, artisan_id, {"P1": 100})
    submit(client, artisan, "P1")
    paid = client.get(f"/api/v1/orders/{order['id']}", headers=staff).json()
    assert paid["status"] == "paid"
    return {
        "plain": plain["id"],
        "plain_sha": plain["photos"][0]["sha256"],
        "failed": failed.json()["id"],
        "payout": paid["payout"]["id"],
    }


def check(client: TestClient, **kw: float) -> FsckReport:
    with client.app.state.sessionmaker() as session:  # type: ignore[attr-defined]
        return fsck(session, client.app.state.store, **kw)  # type: ignore[attr-defined]


def execute(client: TestClient, stmt) -> None:  # type: ignore[no-untyped-def]
    with client.app.state.sessionmaker() as session:  # type: ignore[attr-defined]
        session.execute(stmt)
        session.commit()


def kinds(report: FsckReport) -> list[tuple[str, str]]:
    return sorted((f.kind, f.subject) for f in report.findings)


def test_clean_after_uploads_reviews_and_payouts(client: TestClient, world) -> None:
    report = check(client)
    assert report.ok, report.lines()
    assert report.counts == {
        "photo rows": 4,
        "stored files": 4,
        "inspections": 4,
        "payouts": 1,
    }
    assert report.summary().startswith("fsck: clean")


def test_store_damage_is_found(client: TestClient, world) -> None:
    store = client.app.state.store  # type: ignore[attr-defined]
    sha = world["plain_sha"]
    store.path(sha).write_bytes(b"bit rot")
    orphan = store.put(b"bytes nobody recorded")
    tmp = store.root / "ab" / ".put-123.tmp"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_bytes(b"half a photo")
    # A temporary file whose writer (this process) is alive is a write in flight, not damage.
    (tmp.parent / f".put-{os.getpid()}-x.tmp").write_bytes(b"being written")
    report = check(client)
    assert kinds(report) == [
        ("bad_checksum", sha),
        ("interrupted_write", str(tmp)),
        ("orphan_object", orphan),
    ]
    assert check(client, verify=False).findings[0].kind == "interrupted_write"
    # Young files may belong to uploads in flight: not reported until they are min_age_s old.
    assert kinds(check(client, min_age_s=3600)) == [("bad_checksum", sha)]
    old = store.path(orphan).stat().st_mtime - 7200
    os.utime(store.path(orphan), (old, old))
    assert ("orphan_object", orphan) in kinds(check(client, min_age_s=3600))
    store.path(sha).unlink()
    assert ("missing_object", sha) in kinds(check(client))


def test_record_damage_is_found(client: TestClient, world) -> None:
    plain, failed, payout = world["plain"], world["failed"], world["payout"]
    execute(client, update(Inspection).where(Inspection.id == plain).values(verdict=None))
    execute(client, delete(ReviewItem).where(ReviewItem.inspection_id == failed))
    execute(client, delete(PayoutOutbox).where(PayoutOutbox.payout_id == payout))
    execute(client, update(Payout).where(Payout.id == payout).values(amount_minor=99))
    report = check(client)
    assert kinds(report) == sorted(
        [
            ("no_verdict", plain),
            ("not_queued", failed),
            ("payout_without_outbox", payout),
            ("payout_amount", payout),
        ]
    )
    execute(client, delete(Photo).where(Photo.inspection_id == failed))
    found = kinds(check(client))
    assert ("no_photos", failed) in found
    # The failed upload's photo is now named by nobody.
    assert sum(k == "orphan_object" for k, _ in found) == 1


def test_cli_exit_codes(client: TestClient, settings: Settings, world) -> None:
    env = {
        "KITO_DATA_DIR": str(settings.data_dir),
        "KITO_DATABASE_URL": settings.db_url,
    }
    r = CliRunner().invoke(cli, ["fsck", "--min-age", "0"], env=env)
    assert r.exit_code == 0 and r.stdout.startswith("fsck: clean"), r.output
    client.app.state.store.put(b"stray")  # type: ignore[attr-defined]
    r = CliRunner().invoke(cli, ["fsck", "--min-age", "0"], env=env)
    assert r.exit_code == 1, r.output
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith("orphan_object") and lines[-1].startswith("fsck: 1 problems")
    # The default --min-age (300 s) does not call a file written just now an orphan.
    assert CliRunner().invoke(cli, ["fsck"], env=env).exit_code == 0


def test_cli_unreachable_database_is_exit_2(tmp_path: Path) -> None:
    env = {
        "KITO_DATA_DIR": str(tmp_path),
        "KITO_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none",
    }
    r = CliRunner().invoke(cli, ["fsck"], env=env)
    assert r.exit_code == 2 and r.stderr.startswith("error: database"), r.output
