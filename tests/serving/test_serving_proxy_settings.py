"""Issue 28, case 9: `kito serve` reads proxy headers only from KITO_TRUSTED_PROXIES."""

from __future__ import annotations

import pytest

from serving.core.settings import SettingsError, load_settings


def test_proxy_headers_are_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KITO_TRUSTED_PROXIES", raising=False)
    assert load_settings().uvicorn_proxy_options == {"proxy_headers": False}


def test_trusted_proxies_are_passed_to_uvicorn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KITO_TRUSTED_PROXIES", " 10.0.0.5, 172.16.0.0/12 ")
    options = load_settings().uvicorn_proxy_options
    assert options == {"proxy_headers": True, "forwarded_allow_ips": ["10.0.0.5", "172.16.0.0/12"]}


def test_a_bad_proxy_entry_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KITO_TRUSTED_PROXIES", "10.0.0.5,proxy.local")
    with pytest.raises(SettingsError, match=r"KITO_TRUSTED_PROXIES: 'proxy\.local' is not an IP"):
        load_settings()


def test_serve_passes_the_options(monkeypatch: pytest.MonkeyPatch) -> None:
    """`kito serve` hands them to uvicorn.run (uvicorn itself is not started)."""
    import uvicorn
    from typer.testing import CliRunner

    import serving.app
    from kito.cli import app

    seen: dict[str, object] = {}
    monkeypatch.setattr(uvicorn, "run", lambda _app, **kw: seen.update(kw))
    monkeypatch.setattr(serving.app, "create_app", lambda settings: object())
    monkeypatch.setenv("KITO_TRUSTED_PROXIES", "10.0.0.5")
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code == 0, result.output
    assert seen["proxy_headers"] is True and seen["forwarded_allow_ips"] == ["10.0.0.5"]
