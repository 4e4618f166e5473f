"""Settings: embedded defaults, KITO_ environment variables, unsafe values refused."""

from __future__ import annotations

from pathlib import Path

import pytest

import serving.core.settings as settings_module
from serving.core.settings import (
    MAX_PHOTO_BYTES,
    SettingsError,
    default_model_dir,
    load_settings,
)


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("KITO_DATA_DIR", "KITO_DATABASE_URL", "KITO_HOST", "KITO_PORT"):
        monkeypatch.delenv(var, raising=False)
    s = load_settings()
    assert (s.host, s.port) == ("127.0.0.1", 8000)
    assert s.db_url == f"sqlite:///{(Path('kito-data') / 'kito.db').resolve()}"
    assert s.photos_path == Path("kito-data") / "photos"
    assert s.model_dir == default_model_dir()
    assert s.decode_limits.max_bytes == MAX_PHOTO_BYTES
    assert s.audit_sample_rate == 0.02 and s.payout_webhook_url is None
    assert (s.inspect_queue, s.inspect_queue_timeout_s) == (16, 30.0)
    assert (s.auth_failures_per_minute, s.db_connect_timeout_s) == (20, 5)


def test_the_int8_package_is_the_default_only_on_a_cpu_with_vnni(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("KITO_MODEL_DIR", raising=False)
    int8 = tmp_path / "models" / "default-int8"
    fp32 = tmp_path / "models" / "default"
    monkeypatch.setattr(settings_module, "has_vnni", lambda: True)
    assert default_model_dir(tmp_path) == fp32  # none bundled
    int8.mkdir(parents=True)
    assert default_model_dir(tmp_path) == fp32  # a folder that is not a package
    (int8 / "package.json").write_text("{}")
    assert default_model_dir(tmp_path) == int8
    monkeypatch.setattr(settings_module, "has_vnni", lambda: False)
    assert default_model_dir(tmp_path) == fp32  # its 8-bit weights would saturate here
    # KITO_MODEL_DIR chooses whatever the CPU.
    monkeypatch.setenv("KITO_MODEL_DIR", str(int8))
    assert load_settings().model_dir == int8
    # The repository's own: the INT8 copy is bundled, so the CPU decides.
    monkeypatch.setattr(settings_module, "has_vnni", lambda: True)
    assert default_model_dir().name == "default-int8"


def test_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KITO_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("KITO_PORT", "9000")
    monkeypatch.setenv("KITO_DATABASE_URL", "postgresql+psycopg://u@db:5432/kito")
    monkeypatch.setenv("KITO_MAX_PHOTOS", "3")
    monkeypatch.setenv("KITO_AUDIT_SAMPLE_RATE", "0.1")
    monkeypatch.setenv("KITO_AUDIT_SEED", "7")
    monkeypatch.setenv("KITO_PAYOUT_WEBHOOK_URL", "https://pay.example/hook")
    s = load_settings()
    assert s.port == 9000 and s.max_photos == 3 and s.db_url.startswith("postgresql+psycopg")
    assert (s.audit_sample_rate, s.audit_seed) == (0.1, 7)
    assert s.payout_webhook_url == "https://pay.example/hook"
    assert s.photos_path == tmp_path / "photos"


@pytest.mark.parametrize(
    ("var", "value", "message"),
    [
        ("KITO_PORT", "70000", "KITO_PORT"),
        ("KITO_PORT", "http", "KITO_PORT"),
        ("KITO_HOST", "0.0.0.0", "KITO_ALLOW_PUBLIC_BIND"),
        ("KITO_DATABASE_URL", "mysql://x/y", "KITO_DATABASE_URL"),
        ("KITO_MAX_PHOTO_BYTES", str(MAX_PHOTO_BYTES + 1), "KITO_MAX_PHOTO_BYTES"),
        ("KITO_MAX_PHOTOS", "7", "KITO_MAX_PHOTOS"),
        ("KITO_LOG_LEVEL", "loud", "KITO_LOG_LEVEL"),
        ("KITO_AUDIT_SAMPLE_RATE", "1.5", "KITO_AUDIT_SAMPLE_RATE"),
        ("KITO_AUDIT_SAMPLE_RATE", "-0.1", "KITO_AUDIT_SAMPLE_RATE"),
        ("KITO_PAYOUT_WEBHOOK_URL", "ftp://pay.example/x", "KITO_PAYOUT_WEBHOOK_URL"),
        ("KITO_PAYOUT_WEBHOOK_URL", "http://", "KITO_PAYOUT_WEBHOOK_URL"),
        ("KITO_PAYOUT_WEBHOOK_TIMEOUT_S", "0", "KITO_PAYOUT_WEBHOOK_TIMEOUT_S"),
        ("KITO_PAYOUT_RETRY_MAX_S", "1", "KITO_PAYOUT_RETRY_MAX_S"),
        ("KITO_INSPECT_QUEUE", "-1", "KITO_INSPECT_QUEUE"),
        ("KITO_INSPECT_QUEUE_TIMEOUT_S", "0", "KITO_INSPECT_QUEUE_TIMEOUT_S"),
        ("KITO_AUTH_FAILURES_PER_MINUTE", "0", "KITO_AUTH_FAILURES_PER_MINUTE"),
        ("KITO_DB_CONNECT_TIMEOUT_S", "0", "KITO_DB_CONNECT_TIMEOUT_S"),
    ],
)
def test_unsafe_or_invalid_values_are_refused(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, message: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError, match=message) as info:
        load_settings()
    assert "\n" not in str(info.value)


def test_public_bind_needs_explicit_consent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KITO_HOST", "0.0.0.0")
    monkeypatch.setenv("KITO_ALLOW_PUBLIC_BIND", "true")
    assert load_settings().host == "0.0.0.0"
