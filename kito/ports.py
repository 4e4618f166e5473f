"""Whether the service's port is free, checked before starting, so that a busy port is one
line that says what to do instead of uvicorn's log and exit."""

from __future__ import annotations

import errno
import socket

from qc_model.errors import DataError


def ensure_port_free(host: str, port: int) -> None:
    """Raise DataError naming --port (and KITO_PORT) when host:port cannot be bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # As uvicorn binds: a port in TIME_WAIT after a restart is not "busy".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise DataError(
                    f"port {port} on {host} is already in use (another kito serve or demo?): "
                    f"stop it, or choose another port with --port N (or KITO_PORT=N)"
                ) from None
            raise DataError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
