"""A busy port is a one-line error that names --port, for `kito serve` and `kito demo`."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kito.cli import app
from kito.ports import ensure_port_free
from qc_model.errors import DataError


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_a_busy_port_names_the_option(busy_port: int) -> None:
    with pytest.raises(DataError, match="--port") as err:
        ensure_port_free("127.0.0.1", busy_port)
    assert str(busy_port) in str(err.value)


def test_a_free_port_passes() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    ensure_port_free("127.0.0.1", port)  # closed again: free


def test_kito_serve_on_a_busy_port_exits_2_with_the_hint(
    busy_port: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KITO_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["serve", "--port", str(busy_port)])
    assert result.exit_code == 2, result.output
    assert "already in use" in result.output and "--port" in result.output
