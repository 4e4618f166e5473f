"""A process-wide memory budget for decoded pixels (issue 28, case 5)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from qc_model.decode_errors import MB, DecodeError


class DecodeBudget:
    """Bytes of decoded pixels the whole process may hold while decoding (issue 28: six small
    PNGs of 8000 x 7999 px took a server from 190 MB to 1.6 GB). Every decode reserves its
    cost, estimated from the header, before any pixel is allocated: one that can never fit is
    refused (413 `decode_budget`), others wait up to `wait_s` for room (then 503 `decode_busy`)."""

    def __init__(self, total_bytes: int, wait_s: float = 30.0) -> None:
        self.total_bytes = total_bytes
        self.wait_s = wait_s
        self.used = 0
        self._cond = threading.Condition()

    @contextmanager
    def hold(self, nbytes: int) -> Iterator[None]:
        if nbytes > self.total_bytes:
            raise DecodeError(
                "decode_budget",
                f"decoding this photo needs about {nbytes / MB:,.0f} MB, more than the"
                f" {self.total_bytes / MB:,.0f} MB allowed; send a smaller photo",
                413,
            )
        deadline = time.monotonic() + self.wait_s
        with self._cond:
            while self.used + nbytes > self.total_bytes:
                left = deadline - time.monotonic()
                if left <= 0 or not self._cond.wait(left):
                    if self.used + nbytes <= self.total_bytes:
                        break
                    raise DecodeError(
                        "decode_busy", "the service is decoding other large photos; retry", 503
                    )
            self.used += nbytes
        try:
            yield
        finally:
            with self._cond:
                self.used -= nbytes
                self._cond.notify_all()
