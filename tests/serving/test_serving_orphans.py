"""Issue 28, case 7: uploads racing with one Idempotency-Key leave no orphan photo files, and
orphans left otherwise are swept safely (age, no row, not in flight) by the service and by
`kito fsck --repair`."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from photo_samples import jpeg
from typer.testing import CliRunner
from upload_helpers import counts, post

from kito.cli import app as cli
from serving.core.settings import Settings
from serving.store.fsck import fsck
from serving.store.orphans import IN_FLIGHT, InFlight, OrphanSweeper, sweep_orphans
from serving.store.storage import LocalObjectStore, content_key


def _same_key_burst(
    client: TestClient, headers: dict[str, str], n: int, key: str, trial: int = 0
) -> list[int]:
    barrier = threading.Barrier(n)
    codes: list[int] = []
    photos = [jpeg(300 + i, 240 + trial) for i in range(n)]  # n different bodies, one key

    def upload(i: int) -> None:
        c = TestClient(client.app)
        barrier.wait()
        r = post(c, headers, [("a.jpg", photos[i], "image/jpeg")], key=key)
        codes.append(r.status_code)

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return codes


def _fsck_clean(client: TestClient) -> None:
    store = client.app.state.store  # type: ignore[attr-defined]
    with client.app.state.sessionmaker() as s:  # type: ignore[attr-defined]
        report = fsck(s, store)
    assert report.ok, report.lines()


def _roomy(make_client) -> TestClient:  # type: ignore[no-untyped-def]
    # The per-token limit (4 at once by default) would answer most of the burst with 429.
    client: TestClient = make_client(uploads_per_token=16, uploads_per_address=64)
    return client


def test_one_key_many_bodies_leaves_only_the_winners_files(make_client, make_user) -> None:
    client = _roomy(make_client)
    _, headers = make_user()
    codes = _same_key_burst(client, headers, 12, "same-key-1")
    assert sorted(codes).count(201) == 1 and set(codes) <= {201, 409}, codes
    assert counts(client) == (1, 1, 1)  # one inspection, its photo row, its one file
    _fsck_clean(client)


@pytest.mark.slow
def test_one_key_many_bodies_many_trials(make_client, make_user) -> None:
    client = _roomy(make_client)
    _, headers = make_user()
    for trial in range(15):
        codes = _same_key_burst(client, headers, 12, f"same-key-{trial}", trial)
        assert codes.count(201) == 1, codes
        assert counts(client) == (trial + 1, trial + 1, trial + 1)
    _fsck_clean(client)


def _age(store: LocalObjectStore, key: str, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(store.path(key), (t, t))


def test_sweep_deletes_only_old_unnamed_files_not_in_flight(client: TestClient, make_user) -> None:
    _, headers = make_user()
    kept = post(client, headers).json()["photos"][0]["sha256"]
    store: LocalObjectStore = client.app.state.store  # type: ignore[attr-defined]
    old, young, held = (store.put(b"orphan %d" % i) for i in range(3))
    for key in (kept, old, held):
        _age(store, key, 7200)
    in_flight = InFlight()
    with client.app.state.sessionmaker() as s, in_flight.hold([held]):  # type: ignore[attr-defined]
        gone = sweep_orphans(s, store, min_age_s=3600, in_flight=in_flight)
    assert gone == [old]
    assert [store.exists(k) for k in (kept, old, young, held)] == [True, False, True, True]
    # A put of an existing key makes it young again: an upload reusing it is safe.
    _age(store, young, 7200)
    store.put(b"orphan 1")
    with client.app.state.sessionmaker() as s:  # type: ignore[attr-defined]
        assert sweep_orphans(s, store, min_age_s=3600) == [held]


def test_the_service_sweeps_periodically(client: TestClient) -> None:
    store: LocalObjectStore = client.app.state.store  # type: ignore[attr-defined]
    key = store.put(b"left by a lost upload")
    _age(store, key, 7200)
    sweeper = OrphanSweeper(
        client.app.state.sessionmaker,  # type: ignore[attr-defined]
        store,
        every_s=0.05,
        min_age_s=3600,
    )
    sweeper.start()
    try:
        deadline = time.monotonic() + 5
        while store.exists(key) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        sweeper.close()
    assert not store.exists(key)
    assert client.app.state.orphan_sweeper.is_alive()  # type: ignore[attr-defined]


def test_fsck_repair(client: TestClient, settings: Settings, make_user) -> None:
    env = {"KITO_DATA_DIR": str(settings.data_dir), "KITO_DATABASE_URL": settings.db_url}
    _, headers = make_user()
    post(client, headers)
    store: LocalObjectStore = client.app.state.store  # type: ignore[attr-defined]
    stray = store.put(b"stray")
    assert content_key(b"stray") not in IN_FLIGHT
    r = CliRunner().invoke(cli, ["fsck", "--min-age", "0"], env=env)
    assert r.exit_code == 1 and "orphan_object" in r.stdout
    r = CliRunner().invoke(cli, ["fsck", "--min-age", "60", "--repair"], env=env)
    assert r.exit_code == 0 and store.exists(stray), r.output  # too young to be touched
    r = CliRunner().invoke(cli, ["fsck", "--min-age", "0", "--repair"], env=env)
    assert r.exit_code == 0, r.output
    assert f"deleted                {stray}" in r.stdout and not store.exists(stray)
    assert r.stdout.strip().splitlines()[-1].startswith("fsck: clean")
    assert counts(client)[2] == 1  # the upload's own photo is kept
    assert Path(store.path(post(client, headers).json()["photos"][0]["sha256"])).is_file()
