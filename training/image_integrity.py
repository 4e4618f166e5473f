"""Full-decode integrity check of an image file: broken photos are caught at import, not later."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from io import BytesIO
from typing import Any

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

# Formats both Pillow and OpenCV decode (training and serving read with OpenCV), mapped to the
# extension the copy is stored under; the original file name never decides it.
FORMAT_EXTENSIONS: dict[str, str] = {
    "JPEG": ".jpg",
    "PNG": ".png",
    "WEBP": ".webp",
    "BMP": ".bmp",
    "TIFF": ".tif",
}

_HEIF_BRANDS = {b"ftypheic", b"ftypheix", b"ftyphevc", b"ftypmif1", b"ftypmsf1", b"ftypavif"}


class BadImage(Exception):
    """A file that cannot be imported; `reason` is a short category, `detail` says more."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class ImageInfo:
    format: str
    extension: str
    width: int
    height: int
    mode: str
    exif_orientation: int


def _jpeg_has_end_marker(data: bytes) -> bool:
    """Walk the JPEG marker segments to the last scan and look for EOI (FFD9) after it.

    A plain search for FFD9 is fooled by the EXIF thumbnail, a whole JPEG with its own EOI
    inside APP1; skipping segments by their length steps over it. Inside entropy-coded data
    FF is always followed by 00 (stuffing) or a restart marker, so the first other marker
    there is real.
    """
    n = len(data)
    if n < 4 or data[0:2] != b"\xff\xd8":
        return False
    i = 2
    while i + 2 <= n:
        if data[i] != 0xFF:
            return False
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
            continue
        if marker == 0xD9:
            return True
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # standalone markers, no length
            i += 2
            continue
        if i + 4 > n:
            return False
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        i += 2 + length
        if marker != 0xDA:  # not start-of-scan: the segment is fully skipped
            continue
        # Entropy-coded data until the next marker that is not stuffing or a restart.
        while True:
            j = data.find(b"\xff", i)
            if j < 0 or j + 1 >= n:
                return False
            nxt = data[j + 1]
            if nxt == 0x00 or 0xD0 <= nxt <= 0xD7 or nxt == 0xFF:
                i = j + (2 if nxt != 0xFF else 1)
                continue
            i = j
            break
    return False


def check_image(data: bytes) -> ImageInfo:
    """Decode `data` fully with Pillow and OpenCV; raise BadImage saying why it is unusable."""
    if not data:
        raise BadImage("empty", "zero-byte file")
    if data[4:12] in _HEIF_BRANDS:
        # iPhones default to HEIC; OpenCV, which training reads with, cannot decode it.
        raise BadImage("unsupported_format", "HEIC/HEIF photo; convert it to JPEG first")
    try:
        with warnings.catch_warnings():
            # Large phone photos (over ~89 Mpx) only warn; Pillow's hard limit still refuses bombs.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(BytesIO(data)) as img:
                fmt = img.format or "?"
                if fmt not in FORMAT_EXTENSIONS:
                    raise BadImage("unsupported_format", f"{fmt} images are not accepted")
                # load() decodes every pixel; truncated data raises here, not at open().
                img.load()
                width, height, mode = img.width, img.height, img.mode
                exif: Any = img.getexif()
                orientation = int(exif.get(0x0112, 1) or 1)
    except BadImage:
        raise
    except UnidentifiedImageError:
        raise BadImage("not_an_image", "not a recognised image format") from None
    except Image.DecompressionBombError as exc:
        raise BadImage("too_large", str(exc)) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        detail = str(exc) or type(exc).__name__
        raise BadImage("truncated" if "truncated" in detail else "corrupt", detail) from None
    if fmt == "JPEG" and not _jpeg_has_end_marker(data):
        raise BadImage("truncated", "JPEG data ends before its end-of-image marker")
    # Pillow has decoded every pixel; OpenCV only has to show it reads the format, and a
    # DCT-reduced decode does that in about a third of the time of a full one.
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_8)
    if decoded is None or decoded.size == 0:
        raise BadImage("corrupt", "OpenCV cannot decode it")
    return ImageInfo(fmt, FORMAT_EXTENSIONS[fmt], width, height, mode, orientation)
