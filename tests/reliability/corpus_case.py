"""The shared parts of the bad-input corpus (corpus.py): the `Case` a request is described by,
the ids and paths the cases name, the injection strings, and the helpers that build uploads and
multipart bodies. The corpus_*.py modules import from here; nothing here imports them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from photo_samples import jpeg

DESIGN = "KQ-HOOP-BR-30"
OTHER_ORDER = "ORD-OTHER-ARTISAN"
UPLOAD = "/api/v1/inspections"
MB = 1024 * 1024

INJECTIONS = {
    "sql_or": "' OR '1'='1' --",
    "sql_drop": "'; DROP TABLE inspections; --",
    "sql_union": "x' UNION SELECT token_hash FROM users --",
    "script": "<script>alert(document.cookie)</script>",
    "img_onerror": '"><img src=x onerror=alert(1)>',
    "template": "${7*7}{{7*7}}<%= 7*7 %>",
}


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str
    status: int
    code: str | None  # the JSON error code; None: a non-JSON answer from the HTTP server layer
    role: str = "artisan"  # artisan | qc | admin | none
    form: dict[str, str | list[str]] | None = None
    photos: list[tuple[str, bytes, str]] | None = None
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    error_field: str | None = None
    why: str = ""


def _form(**fields: str | list[str] | None) -> dict[str, str | list[str]]:
    base: dict[str, str | list[str] | None] = {"design_id": DESIGN, "piece_id": "P-1", **fields}
    return {k: v for k, v in base.items() if v is not None}


def upload(
    name: str,
    status: int,
    code: str,
    *,
    photos: list[tuple[str, bytes, str]] | None = None,
    error_field: str | None = None,
    headers: dict[str, str] | None = None,
    **fields: str | list[str] | None,
) -> Case:
    return Case(
        name,
        "POST",
        UPLOAD,
        status,
        code,
        form=_form(**fields),
        photos=photos if photos is not None else [("piece.jpg", jpeg(), "image/jpeg")],
        headers=headers or {},
        error_field=error_field,
    )


def bad_photo(name: str, data: bytes, filename: str, ctype: str, code: str) -> Case:
    return upload(name, 422, code, photos=[(filename, data, ctype)], error_field="photos.0")


# -- multipart bodies (corpus_requests.py, corpus_raw.py) ----------------------------------------
def _multipart(boundary: str, parts: list[tuple[str, bytes, str | None]]) -> bytes:
    out = b""
    for name, body, filename in parts:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disp}\r\n\r\n".encode() + body + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def _good_parts() -> list[tuple[str, bytes, str | None]]:
    return [
        ("design_id", DESIGN.encode(), None),
        ("piece_id", b"P-1", None),
        ("photos", jpeg(), "a.jpg"),
    ]
