"""A TCP proxy the test controls, to take a database away from a running service.

`cut()`: every forwarded connection is reset and the port refuses new ones (what clients see
when PostgreSQL is stopped or crashes). `hang()`: existing connections are reset, new ones are
accepted but nothing is forwarded (a server that vanished mid-handshake: only the client's
connect timeout ends the wait). `restore()`: forwarding again on the same port.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading


class TcpProxy:
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.mode = "forward"
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.port = 0
        self._listen()

    # -- control -------------------------------------------------------------------------------
    def cut(self) -> None:
        with self._lock:
            self.mode = "cut"
            if self._listener is not None:
                self._listener.close()
                self._listener = None
            self._reset_all()

    def hang(self) -> None:
        with self._lock:
            self.mode = "hang"
            self._reset_all()
        if self._listener is None:
            self._listen()

    def restore(self) -> None:
        with self._lock:
            self.mode = "forward"
        if self._listener is None:
            self._listen()

    def close(self) -> None:
        self.cut()

    # -- plumbing ------------------------------------------------------------------------------
    def _listen(self) -> None:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(64)
        self.port = s.getsockname()[1]
        self._listener = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by cut()
            with self._lock:
                if self.mode == "cut":  # accepted just before the listener closed
                    _reset(client)
                    continue
                self._conns.append(client)
                if self.mode == "hang":
                    continue  # held open, never answered
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns.append(upstream)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def _reset_all(self) -> None:
        for s in self._conns:
            _reset(s)
        self._conns.clear()


def _reset(s: socket.socket) -> None:
    # SO_LINGER 0: close with RST, as a crashed server's kernel does, not an orderly FIN. The
    # shutdown first: a close() alone does not wake (or release) a socket that a pump thread
    # is blocked reading, and the connection would live on.
    with contextlib.suppress(OSError):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RD)
    with contextlib.suppress(OSError):
        s.close()
