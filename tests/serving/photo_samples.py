"""Tiny photo files, good and bad, built in memory for the decode and upload tests."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
from PIL import Image


def _scene(w: int, h: int, seed: int = 0) -> np.ndarray:
    """A smooth gradient with a dark disc, so JPEG keeps it small and orientation is visible."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 255 // max(w, 1), yy * 255 // max(h, 1), np.full_like(xx, 128)], -1)
    img = img.astype(np.uint8)
    cv2.circle(img, (w // 3, h // 3), max(4, min(w, h) // 6), (20, 20, 20), -1)
    img[0:4, 0:4] = rng.integers(0, 255, (min(4, h), min(4, w), 3), dtype=np.uint8)
    return img


def pil_bytes(fmt: str, w: int = 320, h: int = 240, *, mode: str = "RGB", **kw: object) -> bytes:
    im = Image.fromarray(_scene(w, h)[:, :, ::-1]).convert(mode)
    buf = io.BytesIO()
    if fmt == "HEIF":
        import pillow_heif

        pillow_heif.register_heif_opener()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def jpeg(w: int = 320, h: int = 240, **kw: object) -> bytes:
    return pil_bytes("JPEG", w, h, quality=85, **kw)


def jpeg_rotated_exif(w: int = 320, h: int = 240) -> bytes:
    """Stored landscape, EXIF says rotate 90° clockwise (orientation 6), as phones do."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return jpeg(w, h, exif=exif.tobytes())


def png16() -> bytes:
    ok, buf = cv2.imencode(".png", (_scene(200, 160).astype(np.uint16) * 257))
    assert ok
    return buf.tobytes()


def png_bomb(w: int = 60_000, h: int = 60_000) -> bytes:
    """A valid-looking PNG header that claims w x h pixels, with a tiny IDAT."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def animated(fmt: str) -> bytes:
    frames = [Image.fromarray(_scene(200, 160, seed=i)) for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, format=fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buf.getvalue()


SVG = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="400" height="400">'
SVG += b'<rect width="400" height="400" fill="red"/></svg>'


def good_photos() -> dict[str, tuple[bytes, str, str]]:
    """name -> (bytes, filename, content type) of photos that must be accepted."""
    return {
        "jpeg": (jpeg(), "piece.jpg", "image/jpeg"),
        "png": (pil_bytes("PNG"), "piece.png", "image/png"),
        "webp": (pil_bytes("WEBP", quality=90), "piece.webp", "image/webp"),
        "heic": (pil_bytes("HEIF", quality=80), "IMG_0001.HEIC", "image/heic"),
        "gray_jpeg": (jpeg(mode="L"), "gray.jpeg", "image/jpeg"),
        "no_extension": (jpeg(), "blob", "application/octet-stream"),
    }


def bad_photos() -> dict[str, tuple[bytes, str, str, str]]:
    """case -> (bytes, filename, content type, expected error code)."""
    good = jpeg()
    return {
        "zero_bytes": (b"", "a.jpg", "image/jpeg", "empty"),
        "not_an_image": (b"hello, this is text\n" * 20, "a.jpg", "image/jpeg", "not_an_image"),
        "truncated": (good[: len(good) // 2], "a.jpg", "image/jpeg", "corrupt"),
        "corrupt": (good[:200] + bytes(range(256)) * 8, "a.jpg", "image/jpeg", "corrupt"),
        "bomb": (png_bomb(), "a.png", "image/png", "decompression_bomb"),
        "bomb_100mp": (png_bomb(10_000, 10_000), "a.png", "image/png", "decompression_bomb"),
        "over_15mb": (
            b"\xff\xd8\xff" + b"\0" * (15 * 1024 * 1024),
            "a.jpg",
            "image/jpeg",
            "too_large",
        ),
        "one_pixel": (pil_bytes("PNG", 1, 1), "a.png", "image/png", "too_small"),
        "animated_gif": (animated("GIF"), "a.gif", "image/gif", "gif_not_allowed"),
        "animated_webp": (animated("WEBP"), "a.webp", "image/webp", "animated"),
        "svg": (SVG, "a.svg", "image/svg+xml", "svg_not_allowed"),
        "cmyk_jpeg": (jpeg(mode="CMYK"), "a.jpg", "image/jpeg", "cmyk_jpeg"),
        "png_16bit": (png16(), "a.png", "image/png", "png_16bit"),
        "extension_lies": (pil_bytes("PNG"), "a.jpg", "image/jpeg", "type_mismatch"),
        "content_type_lies": (good, "a.jpg", "image/png", "type_mismatch"),
        "overlong_name": (good, "a" * 200 + ".jpg", "image/jpeg", "bad_filename"),
        "path_name": (good, "../../etc/passwd.jpg", "image/jpeg", "bad_filename"),
    }
