"""Which object stores the settings name: local folders (one machine, the default) or one
S3-compatible bucket shared by every replica (`KITO_STORAGE_URL=s3://bucket/prefix`), photos
under `<prefix>/photos/` and registered model packages under `<prefix>/packages/`."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from itertools import chain
from typing import TYPE_CHECKING, Any

from serving.core.settings import Settings
from serving.store.storage import LocalObjectStore, ObjectStore, StorageError, content_key

if TYPE_CHECKING:
    from serving.store.storage_s3 import S3ObjectStore


def photo_store(settings: Settings) -> LocalObjectStore | S3ObjectStore:
    if settings.storage_url is None:
        return LocalObjectStore(settings.photos_path)
    return _s3(settings, "photos/")


def package_store(settings: Settings) -> LocalObjectStore | S3ObjectStore:
    if settings.storage_url is None:
        return LocalObjectStore(settings.package_store_path)
    return _s3(settings, "packages/")


def _s3(settings: Settings, folder: str) -> S3ObjectStore:
    # boto3 is imported only when a bucket is configured: one machine needs no S3 client.
    from serving.store.storage_s3 import S3ObjectStore, split_url

    assert settings.storage_url is not None
    bucket, prefix = split_url(settings.storage_url)
    secret = settings.s3_secret_access_key
    client = _client(
        settings.s3_endpoint_url,
        settings.s3_region,
        settings.s3_access_key_id,
        secret.get_secret_value() if secret else None,
    )
    return S3ObjectStore(client, bucket, prefix + folder)


@cache
def _client(endpoint: str | None, region: str, key_id: str | None, secret: str | None) -> Any:
    # One client per process and endpoint: clients are thread-safe and hold the connection pool.
    from serving.store.storage_s3 import make_client

    return make_client(
        endpoint_url=endpoint, region=region, access_key_id=key_id, secret_access_key=secret
    )


def photo_stream(store: ObjectStore, key: str) -> tuple[int, Iterator[bytes]]:
    """(size, chunks) of a photo for a download, checked against its key: `KeyError` if absent,
    `StorageError` if corrupt. From a bucket the photo streams through in 1 MB chunks; the
    first is read (and a photo under 1 MB verified) before the answer starts, so a corrupt
    photo is an error status, not a broken image."""
    stream = getattr(store, "stream", None)
    if stream is None:  # a folder: the whole photo, hashed here
        data = store.get(key)
        if content_key(data) != key:
            raise StorageError(f"photo {key[:12]} in {store}: bytes do not hash to the key")
        return len(data), iter([data])
    size, chunks = stream(key)
    first = next(chunks, b"")
    return size, chain([first], chunks)
