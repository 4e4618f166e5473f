"""Corpus: whole HTTP requests written to a socket (bodies larger than the limit, declared or
chunked; header blocks and request lines no HTTP client library would send). `{host}` and
`{auth}` in them are filled in by the runner."""

from __future__ import annotations

from corpus_case import MB, UPLOAD, Case, _good_parts, _multipart


def _raw(head: str, body: bytes = b"") -> bytes:
    return head.replace("\n", "\r\n").encode() + b"\r\n" + body


def _chunked(pieces: list[bytes]) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


def raw_cases() -> list[Case]:
    boundary = "rawboundary"
    body = _multipart(boundary, _good_parts())
    ctype = f"multipart/form-data; boundary={boundary}"
    return [
        Case(
            "body_over_limit_declared",
            "POST",
            UPLOAD,
            413,
            "payload_too_large",
            raw=_raw(
                f"POST {UPLOAD} HTTP/1.1\nHost: {{host}}\nAuthorization: {{auth}}\n"
                f"Content-Type: {ctype}\nContent-Length: {200 * MB}\n",
                body,
            ),
            why="Content-Length over the limit: refused before a byte of the body is read",
        ),
        Case(
            "body_over_limit_chunked",
            "POST",
            UPLOAD,
            413,
            "payload_too_large",
            raw=_raw(
                f"POST {UPLOAD} HTTP/1.1\nHost: {{host}}\nAuthorization: {{auth}}\n"
                f"Content-Type: {ctype}\nTransfer-Encoding: chunked\n",
                _chunked(
                    [
                        f'--{boundary}\r\nContent-Disposition: form-data; name="photos";'
                        f' filename="a.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'.encode()
                    ]
                    + [b"\xff\xd8\xff" + bytes(MB - 3)] * 100
                ),
            ),
            why="no Content-Length: counted as it arrives, refused once past the limit",
        ),
        Case(
            "header_block_200kb",
            "GET",
            "/api/v1/users/me",
            400,
            None,
            raw=_raw(
                "GET /api/v1/users/me HTTP/1.1\nHost: {host}\nAuthorization: {auth}\n"
                f"X-Padding: {'p' * 200_000}\n"
            ),
            why="refused before routing: by uvicorn with h11, by the URL guard with httptools",
        ),
        Case(
            "garbage_request_line",
            "GET",
            "/",
            400,
            None,
            raw=b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64) + b"\r\n\r\n",
            why="a TLS hello on the plain port: refused by uvicorn before the app",
        ),
    ]
