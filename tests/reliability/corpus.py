"""A corpus of hostile and broken requests, generated in code (no blobs in the repository).

`refused_cases()`: requests the service must refuse with the named 4xx status and error code
(a JSON body), storing nothing. `accepted_cases()`: odd but legitimate requests (palette and
alpha PNGs, EXIF-rotated photos, unicode file names, injection strings where any text is
allowed) that must be answered normally, with what was sent stored verbatim.

Each case names the token it is sent with (`role`) and, for the few that need them, ids the
test sets up first: the order `OTHER_ORDER` belonging to another artisan. `raw` cases are
whole HTTP requests written to a socket (bodies larger than they claim, header blocks no HTTP
client library would send); `{host}` and `{auth}` in them are filled in by the runner.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from photo_samples import SVG, _scene, animated, jpeg, jpeg_rotated_exif, pil_bytes, png16, png_bomb
from PIL import Image

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


# -- photo files --------------------------------------------------------------------------------
def _flip(data: bytes, start: int, length: int) -> bytes:
    out = bytearray(data)
    for i in range(start, min(start + length, len(out))):
        out[i] ^= 0x5A
    return bytes(out)


def _jpeg_claiming(width: int, height: int) -> bytes:
    """A small valid JPEG whose frame header (SOF0) claims `width` x `height` pixels."""
    data = bytearray(jpeg(64 * 3, 64 * 3))
    sof = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def _webp_claiming(width: int, height: int) -> bytes:
    """A small lossy WebP whose VP8 frame header claims `width` x `height` (14 bits each)."""
    data = bytearray(pil_bytes("WEBP", 200, 160, quality=80))
    assert data[12:16] == b"VP8 " and data[23:26] == b"\x9d\x01\x2a"
    struct.pack_into("<HH", data, 26, width & 0x3FFF, height & 0x3FFF)
    return bytes(data)


def _png_corrupt_idat() -> bytes:
    png = pil_bytes("PNG")
    return _flip(png, png.find(b"IDAT") + 8, 200)


def _heic_corrupt() -> bytes:
    heic = pil_bytes("HEIF", quality=80)
    return _flip(heic, heic.find(b"mdat") + 4, 400)


def _apng() -> bytes:
    frames = [Image.fromarray(_scene(200, 160, seed=i)) for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, format="PNG", save_all=True, append_images=frames[1:], duration=100)
    return buf.getvalue()


def _pil(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(_scene(200, 160)).save(buf, format=fmt)
    return buf.getvalue()


def _gifar() -> bytes:
    """A GIF that is also a ZIP archive (the classic "GIFAR" polyglot)."""
    gif = _pil("GIF")
    buf = io.BytesIO()
    import zipfile

    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("evil.class", b"\xca\xfe\xba\xbe")
    return gif + buf.getvalue()


def _png_wide() -> bytes:
    ok, buf = cv2.imencode(".png", np.full((10, 30000, 3), 128, np.uint8))
    assert ok
    return buf.tobytes()


HTML = b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>"
SVG_SCRIPT = SVG.replace(b"</svg>", b"<script>alert(document.cookie)</script></svg>")


def photo_cases() -> list[Case]:
    good_jpeg, png = jpeg(), pil_bytes("PNG")
    webp, heic = pil_bytes("WEBP", quality=90), pil_bytes("HEIF", quality=80)
    cases = [
        ("zero_bytes", b"", "a.jpg", "image/jpeg", "empty"),
        ("jpeg_truncated", good_jpeg[: len(good_jpeg) // 2], "a.jpg", "image/jpeg", "corrupt"),
        (
            "jpeg_garbage_after_header",
            good_jpeg[:200] + bytes(range(256)) * 8,
            "a.jpg",
            "image/jpeg",
            "corrupt",
        ),
        ("png_truncated", png[: len(png) // 2], "a.png", "image/png", "corrupt"),
        ("png_corrupt_idat", _png_corrupt_idat(), "a.png", "image/png", "corrupt"),
        ("webp_truncated", webp[: len(webp) // 2], "a.webp", "image/webp", "corrupt"),
        ("webp_corrupt", _flip(webp, 40, 360), "a.webp", "image/webp", "corrupt"),
        ("heic_truncated", heic[: len(heic) // 2], "a.heic", "image/heic", "corrupt"),
        ("heic_corrupt_mdat", _heic_corrupt(), "a.heic", "image/heic", "corrupt"),
        ("png_bomb_60000x60000", png_bomb(), "a.png", "image/png", "decompression_bomb"),
        (
            "png_bomb_10000x10000",
            png_bomb(10_000, 10_000),
            "a.png",
            "image/png",
            "decompression_bomb",
        ),
        (
            "jpeg_bomb_65500x65500",
            _jpeg_claiming(65500, 65500),
            "a.jpg",
            "image/jpeg",
            "decompression_bomb",
        ),
        (
            "webp_bomb_16383x16383",
            _webp_claiming(16383, 16383),
            "a.webp",
            "image/webp",
            "decompression_bomb",
        ),
        ("gif", _pil("GIF"), "a.gif", "image/gif", "gif_not_allowed"),
        ("animated_webp", animated("WEBP"), "a.webp", "image/webp", "animated"),
        ("animated_png", _apng(), "a.png", "image/png", "animated"),
        ("tiff", _pil("TIFF"), "a.tif", "image/tiff", "not_an_image"),
        ("bmp", _pil("BMP"), "a.bmp", "image/bmp", "not_an_image"),
        ("svg_with_script", SVG_SCRIPT, "a.svg", "image/svg+xml", "svg_not_allowed"),
        ("svg_renamed_jpg", SVG_SCRIPT, "a.jpg", "image/jpeg", "svg_not_allowed"),
        ("html_renamed_jpg", HTML, "a.jpg", "image/jpeg", "not_an_image"),
        (
            "polyglot_png_magic_html",
            b"\x89PNG\r\n\x1a\n" + HTML,
            "a.png",
            "image/png",
            "corrupt",
        ),
        ("polyglot_pdf_jpeg", b"%PDF-1.4\n%" + good_jpeg, "a.jpg", "image/jpeg", "not_an_image"),
        ("polyglot_gifar", _gifar(), "a.gif", "image/gif", "gif_not_allowed"),
        (
            "elf_renamed_jpg",
            b"\x7fELF\x02\x01\x01" + bytes(300),
            "a.jpg",
            "image/jpeg",
            "not_an_image",
        ),
        ("png_16bit", png16(), "a.png", "image/png", "png_16bit"),
        ("jpeg_cmyk", jpeg(mode="CMYK"), "a.jpg", "image/jpeg", "cmyk_jpeg"),
        ("one_pixel", pil_bytes("PNG", 1, 1), "a.png", "image/png", "too_small"),
        ("png_30000x10", _png_wide(), "a.png", "image/png", "too_small"),
        ("extension_lies", png, "a.jpg", "image/jpeg", "type_mismatch"),
        ("content_type_lies", good_jpeg, "a.jpg", "image/png", "type_mismatch"),
        (
            "filename_rtl_override_exe",
            good_jpeg,
            "photo\u202egpj.exe",
            "image/jpeg",
            "type_mismatch",
        ),
        (
            "filename_path_traversal",
            good_jpeg,
            "../../etc/passwd.jpg",
            "image/jpeg",
            "bad_filename",
        ),
        ("filename_escape_sequence", good_jpeg, "a\x1b[31m.jpg", "image/jpeg", "bad_filename"),
        ("filename_200_chars", good_jpeg, "a" * 200 + ".jpg", "image/jpeg", "bad_filename"),
        (
            "filename_script",
            good_jpeg,
            "<script>alert(1)</script>.jpg",
            "image/jpeg",
            "bad_filename",
        ),
        (
            "photo_over_15mb",
            b"\xff\xd8\xff" + bytes(15 * MB),
            "a.jpg",
            "image/jpeg",
            "too_large",
        ),
    ]
    return [bad_photo(*c) for c in cases]


# -- multipart requests and form fields ---------------------------------------------------------
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


def request_cases() -> list[Case]:
    mp = "multipart/form-data"
    cases = [
        Case(
            "multipart_wrong_boundary",
            "POST",
            UPLOAD,
            400,
            "bad_request",
            content=_multipart("realboundary", _good_parts()),
            headers={"Content-Type": f"{mp}; boundary=otherboundary"},
        ),
        Case(
            "multipart_no_boundary",
            "POST",
            UPLOAD,
            400,
            "bad_request",
            content=_multipart("realboundary", _good_parts()),
            headers={"Content-Type": mp},
        ),
        Case(
            "multipart_cut_inside_the_photo",
            "POST",
            UPLOAD,
            422,
            "validation_error",
            content=_multipart("b0undary", _good_parts())[:-400],
            headers={"Content-Type": f"{mp}; boundary=b0undary"},
            error_field="photos",
            why="the unfinished part is dropped by the parser: the photo is missing, not cut",
        ),
        Case(
            "json_body_to_upload",
            "POST",
            UPLOAD,
            422,
            "validation_error",
            json={"design_id": DESIGN, "piece_id": "P-1", "photos": ["/etc/passwd"]},
        ),
        Case(
            "photos_sent_as_text",
            "POST",
            UPLOAD,
            422,
            "validation_error",
            form=_form(photos="/etc/passwd"),
        ),
        upload("missing_photos", 422, "validation_error", photos=[], error_field="photos"),
        upload(
            "missing_design_id", 422, "validation_error", design_id=None, error_field="design_id"
        ),
        upload("missing_piece_id", 422, "validation_error", piece_id=None, error_field="piece_id"),
        upload(
            "duplicated_design_id",
            422,
            "duplicate_field",
            design_id=[DESIGN, "KQ-STUD-BR-12"],
            error_field="design_id",
        ),
        upload(
            "duplicated_piece_id",
            422,
            "duplicate_field",
            piece_id=["P-1", "P-2"],
            error_field="piece_id",
        ),
        upload(
            "seven_photos",
            422,
            "too_many_photos",
            photos=[(f"p{i}.jpg", jpeg(300 + i, 240), "image/jpeg") for i in range(7)],
            error_field="photos",
        ),
        upload(
            "order_of_another_artisan",
            422,
            "unknown_order",
            order_id=OTHER_ORDER,
            error_field="order_id",
        ),
        upload("design_id_10k_chars", 422, "validation_error", design_id="K" * 10_000),
        upload(
            "piece_id_unicode",
            422,
            "validation_error",
            piece_id="kipande-💍",
            error_field="piece_id",
        ),
        upload(
            "idempotency_key_129_chars",
            422,
            "validation_error",
            headers={"Idempotency-Key": "k" * 129},
            error_field="idempotency-key",
        ),
        upload(
            "idempotency_key_8kb",
            422,
            "validation_error",
            headers={"Idempotency-Key": "k" * 8192},
            error_field="idempotency-key",
        ),
        upload(
            "idempotency_key_with_spaces",
            422,
            "validation_error",
            headers={"Idempotency-Key": "' OR 1=1 --"},
            error_field="idempotency-key",
        ),
    ]
    for label, text in INJECTIONS.items():
        cases += [
            upload(
                f"design_id_{label}", 422, "unknown_design", design_id=text, error_field="design_id"
            ),
            upload(
                f"piece_id_{label}", 422, "validation_error", piece_id=text, error_field="piece_id"
            ),
            upload(
                f"order_id_{label}", 422, "validation_error", order_id=text, error_field="order_id"
            ),
        ]
    return cases


# -- raw HTTP ------------------------------------------------------------------------------------
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


# -- the JSON API and query strings ---------------------------------------------------------------
def _order(**over: Any) -> dict[str, Any]:
    piece = {"piece_id": "P1", "design_id": DESIGN, "payout_minor": 45000}
    body: dict[str, Any] = {"artisan_id": 1, "pieces": [piece]}
    for k, v in over.items():
        if k.startswith("piece_"):
            piece[k.removeprefix("piece_")] = v
        else:
            body[k] = v
    return body


def api_cases() -> list[Case]:
    orders = "/api/v1/orders"
    decision = "/api/v1/reviews/no-such-review/decision"

    def order(name: str, status: int, code: str, error_field: str | None = None, **kw: Any) -> Case:
        return Case(
            name,
            "POST",
            orders,
            status,
            code,
            role="qc",
            json=_order(**kw),
            error_field=error_field,
        )

    cases = [
        Case(
            "order_malformed_json",
            "POST",
            orders,
            422,
            "validation_error",
            role="qc",
            content=b'{"artisan_id": 1, "pieces": [',
            headers={"Content-Type": "application/json"},
        ),
        Case(
            "order_json_nested_100k_deep",
            "POST",
            orders,
            400,
            "bad_request",
            role="qc",
            content=b"[" * 100_000 + b"]" * 100_000,
            headers={"Content-Type": "application/json"},
        ),
        order(
            "order_negative_payout",
            422,
            "validation_error",
            "pieces.0.payout_minor",
            piece_payout_minor=-5,
        ),
        order(
            "order_payout_float",
            422,
            "validation_error",
            "pieces.0.payout_minor",
            piece_payout_minor=1.5,
        ),
        order("order_huge_artisan_id", 422, "validation_error", "artisan_id", artisan_id=10**30),
        order("order_extra_field", 422, "validation_error", "paid", paid=True),
        order("order_currency_injection", 422, "validation_error", "currency", currency="K'; --"),
        order("order_artisan_is_staff", 422, "not_an_artisan", "artisan_id", artisan_id=2),
        Case(
            "order_501_pieces",
            "POST",
            orders,
            422,
            "validation_error",
            role="qc",
            json={
                "artisan_id": 1,
                "pieces": [
                    {"piece_id": f"P{i}", "design_id": DESIGN, "payout_minor": 1}
                    for i in range(501)
                ],
            },
            error_field="pieces",
        ),
        Case(
            "decision_unknown_label",
            "POST",
            decision,
            422,
            "unknown_label",
            role="qc",
            json={"decision": "reject", "labels": ["<script>"]},
            error_field="labels.0",
        ),
        Case(
            "decision_note_nul",
            "POST",
            decision,
            422,
            "validation_error",
            role="qc",
            json={"decision": "reject", "note": "ok\u0000"},
            error_field="note",
        ),
        Case(
            "decision_note_2001_chars",
            "POST",
            decision,
            422,
            "validation_error",
            role="qc",
            json={"decision": "reject", "note": "n" * 2001},
            error_field="note",
        ),
        Case(
            "list_limit_huge",
            "GET",
            "/api/v1/inspections?limit=1000000000",
            422,
            "validation_error",
            error_field="limit",
        ),
        Case(
            "list_offset_negative",
            "GET",
            "/api/v1/inspections?offset=-1",
            422,
            "validation_error",
            error_field="offset",
        ),
        Case("query_nul", "GET", "/api/v1/inspections?design_id=%00", 400, "bad_url"),
        Case("path_nul", "GET", "/api/v1/orders/ORD%00", 400, "bad_url"),
        Case(
            "artisan_id_of_another_artisan",
            "GET",
            "/api/v1/inspections?artisan_id=1",
            403,
            "forbidden",
            role="artisan2",
            error_field="artisan_id",
        ),
        Case(
            "artisan_id_overflow",
            "GET",
            "/api/v1/orders?artisan_id=99999999999999999999",
            422,
            "validation_error",
            role="qc",
            error_field="artisan_id",
        ),
        Case(
            "audit_since_garbage",
            "GET",
            "/api/v1/audit?since=yesterday'--",
            422,
            "validation_error",
            role="admin",
            error_field="since",
        ),
        Case(
            "path_traversal_inspection",
            "GET",
            "/api/v1/inspections/..%2F..%2Fetc%2Fpasswd",
            404,
            "not_found",
        ),
        Case(
            "photo_position_overflow",
            "GET",
            "/api/v1/inspections/x/photos/99999999999999999999",
            404,
            "not_found",
        ),
        Case(
            "bearer_token_10kb",
            "GET",
            "/api/v1/users/me",
            401,
            "unauthorized",
            role="none",
            headers={"Authorization": "Bearer " + "k" * 10_000},
        ),
        Case(
            "basic_auth_instead_of_bearer",
            "GET",
            "/api/v1/users/me",
            401,
            "unauthorized",
            role="none",
            headers={"Authorization": "Basic YWRtaW46YWRtaW4="},
        ),
    ]
    return cases


def refused_cases() -> list[Case]:
    cases = photo_cases() + request_cases() + raw_cases() + api_cases()
    names = [c.name for c in cases]
    assert len(names) == len(set(names)), "case names must be unique"
    return cases


# -- accepted: unusual but legitimate -------------------------------------------------------------
@dataclass(frozen=True)
class Accepted:
    name: str
    case: Case
    # For uploads: the file name and media type the stored photo must have.
    filename: str | None = None
    media_type: str | None = None


def accepted_cases() -> list[Accepted]:
    def one(
        name: str,
        data: bytes,
        filename: str,
        ctype: str,
        media: str,
        stored_name: str | None = None,
        **kw: Any,
    ) -> Accepted:
        case = upload(name, 201, "", photos=[(filename, data, ctype)], piece_id="OK-1", **kw)
        return Accepted(name, case, stored_name or filename, media)

    out = [
        one("palette_png", pil_bytes("PNG", mode="P"), "a.png", "image/png", "image/png"),
        one("alpha_png", pil_bytes("PNG", mode="RGBA"), "a.png", "image/png", "image/png"),
        one("gray_alpha_png", pil_bytes("PNG", mode="LA"), "a.png", "image/png", "image/png"),
        one("exif_rotated_jpeg", jpeg_rotated_exif(), "IMG_1.JPG", "image/jpeg", "image/jpeg"),
        one("heic", pil_bytes("HEIF", quality=80), "IMG_2.HEIC", "image/heic", "image/heic"),
        one("unicode_filename", jpeg(), "kipande_cha_dhahabu_💍.jpg", "image/jpeg", "image/jpeg"),
        one("filename_sql", jpeg(), "'; DROP TABLE photos; --.jpg", "image/jpeg", "image/jpeg"),
        # The multipart parser keeps only the last path component (as browsers send it).
        one(
            "filename_windows_path",
            jpeg(),
            "C:\\Users\\x\\a.jpg",
            "image/jpeg",
            "image/jpeg",
            "a.jpg",
        ),
        one(
            "idempotency_key_sql",
            jpeg(321, 240),
            "a.jpg",
            "image/jpeg",
            "image/jpeg",
            headers={"Idempotency-Key": "'OR'1'='1'--"},
        ),
    ]
    for label, text in INJECTIONS.items():
        for param in ("design_id", "piece_id", "verdict", "status"):
            from urllib.parse import quote

            url = f"/api/v1/inspections?{param}={quote(text)}"
            name = f"filter_{param}_{label}"
            out.append(Accepted(name, Case(name, "GET", url, 200, "")))
    return out
