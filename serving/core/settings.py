"""Service settings from `KITO_*` environment variables, validated once at start."""

from __future__ import annotations

import ipaddress
import os
from functools import cached_property
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings import SettingsError as EnvParseError

from qc_model.catalog import default_catalog_dir
from qc_model.cpu import has_vnni
from qc_model.decode import MB, SERVICE_DECODE_LONG_SIDE, DecodeLimits
from qc_model.errors import DataError

REPO_ROOT = Path(__file__).resolve().parents[2]
# Hard ceilings: a setting may tighten these limits but never loosen them past what is safe.
MAX_PHOTO_BYTES = 15 * MB
MAX_PHOTOS = 6
_DB_SCHEMES = ("sqlite", "postgresql+psycopg")


def default_model_dir(root: Path = REPO_ROOT) -> Path:
    """The bundled package the service serves unless KITO_MODEL_DIR says otherwise: the INT8
    copy (models/default-int8, 8-bit weights) on a CPU with VNNI, where its networks take less
    than half the FP32 package's CPU time, level with it on the judged test renders (docs/MODEL.md,
    "INT8"); the FP32 package (models/default) anywhere else, and where no INT8 copy is bundled."""
    int8 = root / "models" / "default-int8"
    if has_vnni() and (int8 / "package.json").is_file():
        return int8
    return root / "models" / "default"


class SettingsError(DataError):
    """A `KITO_*` setting with an unusable value; the message names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KITO_", extra="ignore", frozen=True)

    data_dir: Path = Path("kito-data")
    database_url: str | None = None  # default: SQLite file inside data_dir
    photo_dir: Path | None = None  # default: data_dir / "photos"
    # Photos and model packages in an S3-compatible bucket instead of local folders, shared by
    # every replica: s3://bucket/prefix (serving.store.storage_s3). Endpoint, region and keys below;
    # keys unset: boto3's own chain (AWS_* variables, instance role).
    storage_url: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    model_dir: Path = Field(default_factory=default_model_dir)
    catalog_dir: Path = Field(default_factory=default_catalog_dir)
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8000
    # Binding anywhere but loopback exposes the API; it must be asked for explicitly (behind TLS).
    allow_public_bind: bool = False
    max_photo_bytes: Annotated[int, Field(ge=1024, le=MAX_PHOTO_BYTES)] = MAX_PHOTO_BYTES
    max_photos: Annotated[int, Field(ge=1, le=MAX_PHOTOS)] = MAX_PHOTOS
    max_image_pixels: Annotated[int, Field(ge=1_000_000, le=100_000_000)] = 64_000_000
    min_image_side: Annotated[int, Field(ge=32, le=2000)] = 128
    # The least long side a large JPEG is decoded to (1/2, 1/4 or 1/8 scale in the DCT domain);
    # designs with tight tolerances raise it (qc_model.gate.decode_long_side). 1000: a 12 MP
    # photo is decoded at 1/4 (~2.7 px/mm on a framed card) unless the design needs more.
    decode_long_side: Annotated[int, Field(ge=512, le=8192)] = SERVICE_DECODE_LONG_SIDE
    # Memory for decoded pixels (issue 28, case 5). Process: what all decodes running at once
    # may allocate at their peak (a 64 MP PNG needs 192 MB; one that can never fit is 413
    # `decode_budget`). Request: the decoded photos one upload keeps for its inspection
    # (reduced to the decode target; beyond it 413 `decode_budget`).
    decode_budget_mb: Annotated[int, Field(ge=64, le=65536)] = 384
    request_decode_budget_mb: Annotated[int, Field(ge=8, le=65536)] = 96
    # Per-class review band [t_low, t_high] replacing the model package's, as JSON, e.g.
    # KITO_THRESHOLD_OVERRIDES='{"scratch": [0.3, 0.9]}'; checked against the model at start.
    threshold_overrides: dict[str, tuple[float, float]] = Field(default_factory=dict)
    # Uploads decoded and inspected at once; the rest wait their turn (default: one per core).
    inspect_concurrency: Annotated[int, Field(ge=1, le=64)] = Field(
        default_factory=lambda: os.cpu_count() or 1
    )
    # Uploads allowed to wait for a slot, and for how long; beyond either the service answers
    # 503 `overloaded` with Retry-After at once instead of letting requests pile up.
    inspect_queue: Annotated[int, Field(ge=0, le=1024)] = 16
    inspect_queue_timeout_s: Annotated[float, Field(gt=0, le=600)] = 30.0
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed: comma-separated IP
    # addresses or networks (e.g. "10.0.0.5,172.16.0.0/12"). Empty (the default): no proxy
    # headers are read and a client's address is the TCP peer's, so nobody can choose the
    # address the auth-failure limiter and the upload limits count them under.
    trusted_proxies: str = ""
    # Uploads one token, and one client address, may have in progress at once (429 beyond).
    uploads_per_token: Annotated[int, Field(ge=1, le=1024)] = 4
    uploads_per_address: Annotated[int, Field(ge=1, le=4096)] = 16
    # Seconds a request body may take to arrive in full; slower ones get 408.
    body_timeout_s: Annotated[float, Field(gt=0, le=3600)] = 60.0
    # Orphan photo files (stored, named by no row) older than the minimum age are deleted by
    # a sweep this often (serving.store.orphans); `kito fsck --repair` does the same on demand.
    orphan_sweep_s: Annotated[float, Field(gt=0, le=86400 * 7)] = 3600.0
    orphan_min_age_s: Annotated[float, Field(ge=1, le=86400 * 30)] = 3600.0
    # Unknown bearer tokens per client address and minute before that address gets 429.
    auth_failures_per_minute: Annotated[int, Field(ge=1, le=100_000)] = 20
    # How long a PostgreSQL connection attempt (and a wait for a pooled one) may take: with the
    # database down, requests fail fast with 503 instead of hanging.
    db_connect_timeout_s: Annotated[int, Field(ge=1, le=120)] = 5
    migrate_on_start: bool = True
    # How often each service process asks the model registry whether the champion or shadow
    # changed; a change is loaded in the background and swapped in between requests.
    registry_poll_s: Annotated[float, Field(gt=0, le=300)] = 1.0
    # Object store of registered model packages, shared by every replica like the photo store
    # (default: data_dir / "packages"); and this host's unpacked copies (data_dir / "models").
    package_dir: Path | None = None
    model_cache_dir: Path | None = None
    # Frozen holdout ("golden set") per taxonomy version (default: data_dir / "holdout");
    # `kito train` reads the same place from KITO_HOLDOUT_DIR / KITO_DATA_DIR.
    holdout_dir: Path | None = None
    # `kito retrain` trains only once this many photos were reviewed since the champion was built.
    retrain_min_reviews: Annotated[int, Field(ge=1)] = 200
    log_level: str = "info"
    # Share of `pass` verdicts sent to the review queue anyway, so escapes are measured.
    audit_sample_rate: Annotated[float, Field(ge=0.0, le=1.0)] = 0.02
    # Seed of the audit sampler (None: unpredictable); tests and replays set it.
    audit_seed: int | None = None
    # Pay an order the moment its last piece is accepted; false: only on QC's explicit release.
    auto_payout: bool = True
    # Where payouts are POSTed (mobile money in real life); unset: payouts wait in the outbox.
    payout_webhook_url: str | None = None
    payout_webhook_timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0
    # Retry delay doubles from base to max after each failed delivery; it never gives up.
    payout_retry_base_s: Annotated[float, Field(gt=0, le=3600)] = 5.0
    payout_retry_max_s: Annotated[float, Field(gt=0, le=86400)] = 3600.0
    # How often the service's dispatcher thread looks for due payouts.
    payout_poll_s: Annotated[float, Field(gt=0, le=300)] = 2.0

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(tuple(s + ":" for s in _DB_SCHEMES)):
            raise ValueError("must start with sqlite:/// or postgresql+psycopg://")
        return v

    @field_validator("storage_url")
    @classmethod
    def _storage(cls, v: str | None) -> str | None:
        if v is not None:
            parts = urlsplit(v)
            if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
                raise ValueError("must look like s3://bucket or s3://bucket/prefix")
        return v

    @field_validator("s3_endpoint_url")
    @classmethod
    def _endpoint(cls, v: str | None) -> str | None:
        if v is not None:
            parts = urlsplit(v)
            if parts.scheme not in {"http", "https"} or not parts.hostname:
                raise ValueError("must be an http:// or https:// URL with a host")
        return v

    @field_validator("threshold_overrides")
    @classmethod
    def _bands(cls, v: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        for name, (lo, hi) in v.items():
            if not 0.0 <= lo <= hi <= 1.0:
                raise ValueError(
                    f"class {name!r}: need 0 <= t_low <= t_high <= 1, got [{lo}, {hi}]"
                )
        return v

    @field_validator("payout_webhook_url")
    @classmethod
    def _webhook(cls, v: str | None) -> str | None:
        if v is None:
            return v
        parts = urlsplit(v)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return v

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, v: str) -> str:
        for entry in (e.strip() for e in v.split(",")):
            if not entry:
                continue
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network") from None
        return ",".join(e.strip() for e in v.split(",") if e.strip())

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, v: str) -> str:
        if v.lower() not in {"critical", "error", "warning", "info", "debug"}:
            raise ValueError("must be one of critical, error, warning, info, debug")
        return v.lower()

    @model_validator(mode="after")
    def _retry_range(self) -> Settings:
        if self.payout_retry_max_s < self.payout_retry_base_s:
            raise ValueError(
                "KITO_PAYOUT_RETRY_MAX_S must be at least KITO_PAYOUT_RETRY_BASE_S"
                f" ({self.payout_retry_max_s} < {self.payout_retry_base_s})"
            )
        return self

    @model_validator(mode="after")
    def _safe_bind(self) -> Settings:
        if not self.allow_public_bind and not _is_loopback(self.host):
            raise ValueError(
                f"host {self.host!r} is not loopback; set KITO_ALLOW_PUBLIC_BIND=true to expose"
                " the API (only behind a TLS-terminating proxy)"
            )
        return self

    @cached_property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'kito.db').resolve()}"

    @cached_property
    def photos_path(self) -> Path:
        return self.photo_dir or self.data_dir / "photos"

    @cached_property
    def package_store_path(self) -> Path:
        return self.package_dir or self.data_dir / "packages"

    @cached_property
    def model_cache_path(self) -> Path:
        return self.model_cache_dir or self.data_dir / "models"

    @cached_property
    def holdout_path(self) -> Path:
        return self.holdout_dir or self.data_dir / "holdout"

    @cached_property
    def uvicorn_proxy_options(self) -> dict[str, object]:
        """uvicorn.run's proxy arguments: proxy headers only from `trusted_proxies`."""
        trusted = [e for e in self.trusted_proxies.split(",") if e]
        if not trusted:
            return {"proxy_headers": False}
        return {"proxy_headers": True, "forwarded_allow_ips": trusted}

    @cached_property
    def decode_limits(self) -> DecodeLimits:
        return DecodeLimits(
            max_bytes=self.max_photo_bytes,
            max_pixels=self.max_image_pixels,
            min_side=self.min_image_side,
            target_long_side=self.decode_long_side,
            reduce_lossless=True,
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment (plus explicit overrides), or a one-line `SettingsError`."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except EnvParseError as exc:
        # A JSON-valued variable that is not JSON; pydantic-settings names the field.
        field_name = str(exc).split('"')[1] if '"' in str(exc) else "settings"
        raise SettingsError(f"KITO_{field_name.upper()}: not valid JSON") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        name = "_".join(str(p) for p in err["loc"]).upper()
        where = f"KITO_{name}" if name else "settings"
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise SettingsError(f"{where}: {msg}") from None
