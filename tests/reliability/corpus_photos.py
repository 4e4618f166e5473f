"""Corpus: broken, hostile and refused photo files (truncated, corrupt, bombs, polyglots, wrong
types and lying names), each sent as the one photo of an otherwise good upload."""

from __future__ import annotations

import io
import struct

import cv2
import numpy as np
from corpus_case import MB, Case, bad_photo
from photo_samples import SVG, _scene, animated, jpeg, pil_bytes, png16, png_bomb
from PIL import Image


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
