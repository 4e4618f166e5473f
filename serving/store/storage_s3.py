"""The photo store in an S3-compatible bucket (AWS S3, SeaweedFS, MinIO, Ceph), for replicas on
several machines. Same guarantees as `LocalObjectStore`: the key is the sha256 of the bytes, a
put has finished (and the server checked its MD5) before the caller writes the row naming it,
and every read is hashed again, so a corrupt object is refused, never served."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from serving.store.storage import StorageError, check_key, content_key

_CHUNK = 1 << 20
_MISSING = {"404", "NoSuchKey", "NotFound"}


class CorruptObject(StorageError):
    """A stored object whose bytes do not hash to its key."""


def split_url(url: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` -> ("bucket", "some/prefix/"); the prefix may be empty."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise StorageError(f"not an s3://bucket/prefix URL: {url!r}")
    prefix = parts.path.strip("/")
    return parts.netloc, f"{prefix}/" if prefix else ""


def make_client(
    *,
    endpoint_url: str | None,
    region: str,
    access_key_id: str | None,
    secret_access_key: str | None,
    pool: int = 32,
) -> Any:
    # Path-style addressing: S3-compatible servers on a private host name have no per-bucket DNS.
    # Short timeouts and few retries: an upload waits on the store, and a store that is down
    # must turn into a 503 `storage_unavailable` in seconds, not a hung request.
    config = Config(
        s3={"addressing_style": "path"},
        connect_timeout=5,
        read_timeout=30,
        retries={"max_attempts": 3, "mode": "standard"},
        max_pool_connections=pool,
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        config=config,
    )


class S3ObjectStore:
    """Objects at `s3://bucket/<prefix><sha256>`. The client is thread-safe; one per process."""

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client, self.bucket, self.prefix = client, bucket, prefix

    def __repr__(self) -> str:
        return f"S3ObjectStore(s3://{self.bucket}/{self.prefix})"

    def name(self, key: str) -> str:
        return self.prefix + check_key(key)

    def put(self, data: bytes, key: str | None = None) -> str:
        key = key or content_key(data)
        if self._size(key) == len(data):
            return key  # content-addressed: the same bytes are already there
        md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
        try:
            # PUT is atomic in S3: a reader sees the whole object or none, so no temporary name.
            self.client.put_object(
                Bucket=self.bucket,
                Key=self.name(key),
                Body=data,
                ContentMD5=md5,
                ContentType="application/octet-stream",
            )
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"cannot write photo {key[:12]} to {self}: {_why(exc)}") from exc
        return key

    def get(self, key: str) -> bytes:
        return b"".join(self.stream(key)[1])

    def stream(self, key: str) -> tuple[int, Iterator[bytes]]:
        """(size, chunks) of the object; `KeyError` if absent. The chunks are hashed as they
        go: the last one raises `CorruptObject` instead of arriving if the sum does not match,
        so a streamed response is cut short rather than completed with wrong bytes."""
        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=self.name(key))
        except ClientError as exc:
            if _code(exc) in _MISSING:
                raise KeyError(key) from None
            raise StorageError(f"cannot read photo {key[:12]} from {self}: {_why(exc)}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"cannot read photo {key[:12]} from {self}: {_why(exc)}") from exc
        return int(obj["ContentLength"]), self._verified(key, obj["Body"])

    def _verified(self, key: str, body: Any) -> Iterator[bytes]:
        digest = hashlib.sha256()
        held = b""
        try:
            while chunk := body.read(_CHUNK):
                digest.update(chunk)
                if held:
                    yield held
                held = chunk
        except (BotoCoreError, ClientError, OSError) as exc:
            raise StorageError(f"reading photo {key[:12]} from {self} failed: {exc}") from exc
        finally:
            body.close()
        if digest.hexdigest() != key:
            raise CorruptObject(f"photo {key[:12]} in {self}: bytes do not hash to the key")
        if held:
            yield held

    def digest(self, key: str) -> str:
        """The sha256 of the stored bytes, read in chunks (`kito fsck`); `KeyError` if absent."""
        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=self.name(key))
            digest = hashlib.sha256()
            with obj["Body"] as body:
                while chunk := body.read(_CHUNK):
                    digest.update(chunk)
        except ClientError as exc:
            if _code(exc) in _MISSING:
                raise KeyError(key) from None
            raise StorageError(f"cannot read {key[:12]} from {self}: {_why(exc)}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"cannot read {key[:12]} from {self}: {_why(exc)}") from exc
        return digest.hexdigest()

    def exists(self, key: str) -> bool:
        return self._size(key) is not None

    def _size(self, key: str) -> int | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.name(key))
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return None
            raise StorageError(f"cannot reach {self}: {_why(exc)}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"cannot reach {self}: {_why(exc)}") from exc
        return int(head["ContentLength"])

    def list_keys(self) -> Iterator[tuple[str, float]]:
        """Every stored object: (key, last-modified epoch seconds). Names under the prefix that
        are not a sha256 were not written by this store and are left out."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        )
        try:
            for page in pages:
                for entry in page.get("Contents", []):
                    key = entry["Key"][len(self.prefix) :]
                    try:
                        check_key(key)
                    except StorageError:
                        continue
                    yield key, entry["LastModified"].timestamp()
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"cannot list {self}: {_why(exc)}") from exc

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.name(key))
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"cannot delete {key[:12]} from {self}: {_why(exc)}") from exc

    def check(self) -> None:
        # HEAD on the bucket proves the endpoint answers and the keys are accepted, without
        # writing an object on every /readyz probe of every replica.
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"photo bucket {self} is not usable: {_why(exc)}") from exc


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _why(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return f"{err.get('Code') or status}: {err.get('Message') or 'no message'}"
    return str(exc).splitlines()[0][:200]
