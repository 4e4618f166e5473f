"""The photo store in a real S3-compatible server (SeaweedFS started by the tests, no mock):
content-addressed, verified on read, listed and deleted for the orphan sweep, `kito fsck` over
it, and the service storing and streaming photos from the bucket instead of a folder."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from photo_samples import jpeg
from upload_helpers import post

from serving.app import create_app
from serving.core.settings import Settings, SettingsError, load_settings
from serving.inspection.pipeline import InspectorStatus
from serving.store.fsck import fsck
from serving.store.storage import StorageError
from serving.store.stores import photo_stream

pytest.importorskip("boto3")
from serving.store.storage_s3 import CorruptObject, S3ObjectStore, make_client, split_url


@pytest.fixture
def store(seaweedfs: Any) -> S3ObjectStore:
    return S3ObjectStore(seaweedfs.client(), seaweedfs.bucket, seaweedfs.new_prefix())


def raw_put(store: S3ObjectStore, key: str, data: bytes) -> None:
    """Bytes written behind the store's back (disk damage, an operator's mistake)."""
    store.client.put_object(Bucket=store.bucket, Key=store.prefix + key, Body=data)


def test_put_get_is_content_addressed(store: S3ObjectStore) -> None:
    before = time.time()
    key = store.put(b"photo bytes")
    assert key == hashlib.sha256(b"photo bytes").hexdigest()
    assert store.get(key) == b"photo bytes" and store.exists(key)
    assert store.put(b"photo bytes") == key  # a second put is a no-op
    listed = list(store.list_keys())
    assert [k for k, _ in listed] == [key]
    assert before - 5 <= listed[0][1] <= time.time() + 5  # last-modified, epoch seconds
    head = store.client.head_object(Bucket=store.bucket, Key=f"{store.prefix}{key}")
    assert head["ContentLength"] == len(b"photo bytes")


def test_missing_and_bad_keys(store: S3ObjectStore) -> None:
    with pytest.raises(KeyError):
        store.get("0" * 64)
    assert not store.exists("0" * 64)
    for bad in ["../x", "A" * 64, "0" * 63]:
        with pytest.raises(StorageError, match="not a sha256 key"):
            store.get(bad)


def test_delete_and_foreign_names_are_not_listed(store: S3ObjectStore) -> None:
    a, b = store.put(b"a" * 10), store.put(b"b" * 10)
    store.client.put_object(Bucket=store.bucket, Key=store.prefix + "README", Body=b"x")
    store.client.put_object(Bucket=store.bucket, Key=store.prefix + "x/" + "c" * 64, Body=b"x")
    assert sorted(k for k, _ in store.list_keys()) == sorted([a, b])
    store.delete(a)
    assert not store.exists(a) and [k for k, _ in store.list_keys()] == [b]


def test_corrupt_object_is_refused_not_served(store: S3ObjectStore) -> None:
    key = store.put(b"good bytes")
    raw_put(store, key, b"evil bytes")
    with pytest.raises(CorruptObject, match="do not hash"):
        store.get(key)
    with pytest.raises(StorageError):  # a small photo fails before the answer starts
        photo_stream(store, key)
    # A put of the right bytes with the same length does not see the damage (HEAD compares
    # sizes only), so fsck is what finds it; a put of other length rewrites.
    assert store.digest(key) == hashlib.sha256(b"evil bytes").hexdigest()


def test_large_photo_streams_in_chunks_and_is_cut_if_corrupt(store: S3ObjectStore) -> None:
    data = bytes(range(256)) * 12_000  # 3 MB: three chunks
    key = store.put(data)
    size, chunks = photo_stream(store, key)
    parts = list(chunks)
    assert size == len(data) and len(parts) == 3 and b"".join(parts) == data
    raw_put(store, key, data[:-1] + b"\x00")
    size, chunks = photo_stream(store, key)
    got = [next(chunks), next(chunks)]  # the first chunks go out; the last one never does
    with pytest.raises(CorruptObject):
        next(chunks)
    assert sum(map(len, got)) < size


def test_wrong_credentials_and_dead_endpoint_are_storage_errors(
    seaweedfs: Any, store: S3ObjectStore
) -> None:
    wrong = make_client(
        endpoint_url=seaweedfs.endpoint,
        region="us-east-1",
        access_key_id="kito-test",
        secret_access_key="not-the-secret",
    )
    with pytest.raises(StorageError, match="not usable"):
        S3ObjectStore(wrong, store.bucket).check()
    with pytest.raises(StorageError):
        S3ObjectStore(wrong, store.bucket).put(b"x")
    with pytest.raises(StorageError, match="not usable"):
        S3ObjectStore(seaweedfs.client(), "no-such-bucket").check()
    store.check()


def test_settings_refuse_a_bad_storage_url() -> None:
    with pytest.raises(SettingsError, match="KITO_STORAGE_URL"):
        load_settings(storage_url="/var/photos")
    with pytest.raises(SettingsError, match="KITO_S3_ENDPOINT_URL"):
        load_settings(storage_url="s3://b", s3_endpoint_url="localhost:9000")
    assert split_url("s3://bucket/a/b/") == ("bucket", "a/b/")
    assert split_url("s3://bucket") == ("bucket", "")
    s = load_settings(storage_url="s3://b/p", s3_secret_access_key="hush")
    assert "hush" not in repr(s)


@pytest.fixture
def s3_client(
    settings: Settings, seaweedfs: Any, inspector: Any
) -> Iterator[tuple[TestClient, S3ObjectStore]]:
    prefix = seaweedfs.new_prefix()
    s = Settings.model_validate({**settings.model_dump(), **seaweedfs.settings(prefix)})
    app = create_app(s, inspector_status=InspectorStatus(inspector, "fake inspector"))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c, app.state.store


def test_service_keeps_photos_in_the_bucket(
    s3_client: tuple[TestClient, S3ObjectStore], settings: Settings
) -> None:
    client, store = s3_client
    assert isinstance(store, S3ObjectStore) and store.prefix.endswith("/photos/")
    _, artisan = s3_make_user(client)
    photo = jpeg(330, 240)
    r = post(client, artisan, [("a.jpg", photo, "image/jpeg")])
    assert r.status_code == 201, r.text
    sha = r.json()["photos"][0]["sha256"]
    assert [k for k, _ in store.list_keys()] == [sha]
    assert not Path(settings.photos_path).exists()  # nothing went to the local folder
    got = client.get(f"/api/v1/inspections/{r.json()['id']}/photos/0", headers=artisan)
    assert got.status_code == 200 and got.content == photo
    assert got.headers["content-length"] == str(len(photo))
    ready = client.get("/readyz").json()
    assert ready["checks"]["photo_store"]["ok"] is True

    def report() -> list[tuple[str, str]]:
        with client.app.state.sessionmaker() as session:  # type: ignore[attr-defined]
            return sorted((f.kind, f.subject) for f in fsck(session, store).findings)

    assert report() == []
    orphan = store.put(b"an upload that never got its row")
    raw_put(store, sha, photo[:-1] + b"\x00")
    assert report() == sorted([("orphan_object", orphan), ("bad_checksum", sha)])
    corrupt = client.get(f"/api/v1/inspections/{r.json()['id']}/photos/0", headers=artisan)
    assert corrupt.status_code == 503  # refused, not served
    store.delete(sha)
    assert ("missing_object", sha) in report()


def s3_make_user(client: TestClient) -> tuple[int, dict[str, str]]:
    from serving.core.auth import create_user

    with client.app.state.sessionmaker() as session:  # type: ignore[attr-defined]
        user, token = create_user(session, name="Wanjiru", role="artisan")
        return user.id, {"Authorization": f"Bearer {token}"}


def test_kito_fsck_reads_the_bucket(
    s3_client: tuple[TestClient, S3ObjectStore],
    settings: Settings,
    seaweedfs: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from kito.cli import app as cli

    client, store = s3_client
    _, artisan = s3_make_user(client)
    assert post(client, artisan, [("a.jpg", jpeg(333, 240), "image/jpeg")]).status_code == 201
    prefix = store.prefix.removesuffix("photos/")
    env = {**seaweedfs.settings(prefix), "database_url": settings.db_url}
    for name, value in {**env, "data_dir": str(settings.data_dir)}.items():
        monkeypatch.setenv(f"KITO_{name.upper()}", value)
    clean = CliRunner().invoke(cli, ["fsck", "--min-age", "0"])
    assert clean.exit_code == 0, clean.output
    assert "1 stored files" in clean.output
    orphan = store.put(b"stored, then the upload failed")
    found = CliRunner().invoke(cli, ["fsck", "--min-age", "0"])
    assert found.exit_code == 1 and "orphan_object" in found.output and orphan in found.output
