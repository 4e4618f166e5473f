"""The refusal every photo check raises (qc_model.decode), and the megabyte."""

from __future__ import annotations

from qc_model.errors import DataError

MB = 1024 * 1024


class DecodeError(DataError):
    """A refused photo. `code` is stable and machine-readable; the message is for people;
    `status` the HTTP status a service answers with (422, 413 over a memory budget, 503 busy)."""

    def __init__(self, code: str, message: str, status: int = 422) -> None:
        self.code = code
        self.message = message
        self.status = status
        super().__init__(f"{code}: {message}")
