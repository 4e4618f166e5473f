"""Safe photo decoding: allow-list by file signature, size limits before decoding, EXIF orientation.

Every photo that enters the system from outside goes through `decode_photo`. It refuses anything
that is not a plain still JPEG, PNG, WebP or HEIC of sensible size, with a `DecodeError` whose
`code` says exactly why, and decodes large JPEGs at reduced scale in the DCT domain (less work
than a full decode followed by a resize).
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps, UnidentifiedImageError

# Re-exported: callers import these from here.
from qc_model.decode_budget import DecodeBudget as DecodeBudget
from qc_model.decode_errors import MB as MB
from qc_model.decode_errors import DecodeError as DecodeError

# Pillow allocates large images in blocks of 16 MB by default; glibc serves those from its heap
# and keeps them after they are freed (measured: RSS +260 MB per 64 MP PNG, never returned).
# Blocks of 64 MB are mapped and unmapped one by one, so a decode's memory goes back to the OS.
Image.core.set_block_size(64 * MB)

# The service's least decode target (serving.core.settings, KITO_DECODE_LONG_SIDE): 1000 px.
SERVICE_DECODE_LONG_SIDE = 1000


@dataclass(frozen=True)
class DecodeLimits:
    max_bytes: int = 15 * MB
    # Counted from the header before any pixel is decoded: a 50 kB PNG can claim 60000 x 60000 px.
    max_pixels: int = 64_000_000
    min_side: int = 128
    # Large JPEGs are decoded at 1/2, 1/4 or 1/8 scale as long as the long side stays >= this.
    # 1500: a 12 MP phone photo (4032 px) is decoded at 1/2, ~6 px/mm on a framed card, three
    # times what the tightest catalog tolerance needs (docs/CHECKS.md); a full decode took 4x
    # as long and every later stage works on 4x the pixels.
    target_long_side: int = 1500
    # PNG, WebP and HEIC have no reduced decode: when True they are reduced right after the
    # decode the way a JPEG's DCT scaling would have (`reduce_whole`), so a request holds
    # small images, not full ones. The service sets it; training reads photos at full size.
    reduce_lossless: bool = False


@dataclass(frozen=True)
class DecodedPhoto:
    """One decoded photo, upright (EXIF orientation applied), 8-bit BGR as OpenCV expects."""

    image: NDArray[np.uint8] = field(repr=False)  # (H, W, 3) BGR
    format: str  # "jpeg" | "png" | "webp" | "heic"
    media_type: str
    original_size: tuple[int, int]  # (width, height) as stored in the file, before orientation
    scale: int  # DCT reduction factor used when decoding (1 = full resolution)
    sha256: str  # of the raw bytes, which is also the photo's storage key
    byte_size: int

    @property
    def size(self) -> tuple[int, int]:
        return self.image.shape[1], self.image.shape[0]


MEDIA_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp", "heic": "image/heic"}
_PIL_FORMATS = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "heic": "HEIF"}
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
_EXTENSIONS = {
    "jpeg": {".jpg", ".jpeg", ".jpe", ".jfif"},
    "png": {".png"},
    "webp": {".webp"},
    "heic": {".heic", ".heif", ".hif"},
}
_DECLARED_TYPES = {
    "jpeg": {"image/jpeg", "image/jpg", "image/pjpeg"},
    "png": {"image/png"},
    "webp": {"image/webp"},
    "heic": {"image/heic", "image/heif", "image/heic-sequence", "image/heif-sequence"},
}
# Clients that do not know the type send one of these; they are not a claim about the format.
_GENERIC_TYPES = {"", "application/octet-stream", "binary/octet-stream"}
MAX_FILENAME_CHARS = 128


def check_filename(name: str) -> None:
    """Refuse overlong, path-like or control-character file names (they are never used as paths,
    but a name like that is a sign of a broken or hostile client, and it ends up in logs)."""
    if len(name) > MAX_FILENAME_CHARS:
        raise DecodeError("bad_filename", f"file name longer than {MAX_FILENAME_CHARS} characters")
    if "/" in name or "\\" in name or name in {".", ".."} or name.startswith(".."):
        raise DecodeError("bad_filename", "file name must not contain a path")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise DecodeError("bad_filename", "file name must not contain control characters")


def check_declared_type(fmt: str, filename: str | None, content_type: str | None) -> None:
    """The declared extension and content type must agree with the signature when given."""
    if filename and "." in filename.strip("."):
        ext = "." + filename.rsplit(".", 1)[1].lower()
        if ext not in _EXTENSIONS[fmt]:
            raise DecodeError(
                "type_mismatch", f"file name says {ext!r} but the content is {fmt.upper()}"
            )
    declared = (content_type or "").split(";")[0].strip().lower()
    if declared not in _GENERIC_TYPES and declared not in _DECLARED_TYPES[fmt]:
        raise DecodeError(
            "type_mismatch", f"content type {declared!r} but the content is {fmt.upper()}"
        )


def sniff_format(data: bytes) -> str:
    """The allowed format the bytes' signature names; `DecodeError` for anything else."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return "heic"
    if data.startswith((b"GIF87a", b"GIF89a")):
        raise DecodeError("gif_not_allowed", "GIF images (often animated) are not accepted")
    head = data[:512].lstrip().lower()
    if b"<svg" in head or (head.startswith(b"<?xml") and b"svg" in data[:4096].lower()):
        raise DecodeError("svg_not_allowed", "SVG drawings are not accepted; send a photo")
    raise DecodeError("not_an_image", "the file is not a JPEG, PNG, WebP or HEIC photo")


def _open_lazy(data: bytes, fmt: str) -> Image.Image:
    """Open without decoding pixels: the header alone gives size and mode."""
    if fmt == "heic":
        import pillow_heif  # lazy: only HEIC uploads pay for loading libheif

        pillow_heif.register_heif_opener()
    try:
        with warnings.catch_warnings():
            # Our own pixel limit is checked right after; Pillow's warning would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data), formats=[_PIL_FORMATS[fmt]])
    except Image.DecompressionBombError:
        raise DecodeError("decompression_bomb", "the image claims far too many pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise DecodeError("corrupt", f"the {fmt.upper()} header cannot be read ({exc})") from None


def _check_header(im: Image.Image, data: bytes, fmt: str, limits: DecodeLimits) -> None:
    w, h = im.size
    if w * h > limits.max_pixels:
        raise DecodeError(
            "decompression_bomb",
            f"{w}x{h} px is more than the {limits.max_pixels:,} px allowed",
        )
    if min(w, h) < limits.min_side:
        raise DecodeError(
            "too_small", f"{w}x{h} px is too small (each side needs >= {limits.min_side} px)"
        )
    # HEIC bursts and depth maps carry extra images; the primary one is the photo, so HEIC passes.
    animated = getattr(im, "is_animated", False) or getattr(im, "n_frames", 1) > 1
    if animated and fmt != "heic":
        raise DecodeError("animated", "animated images are not accepted; send a still photo")
    if fmt == "jpeg" and im.mode == "CMYK":
        raise DecodeError("cmyk_jpeg", "CMYK JPEGs (print files) are not accepted; send a photo")
    # PNG IHDR: byte 24 is the bit depth. Pillow silently narrows some 16-bit PNGs, so read it raw.
    if fmt == "png" and len(data) > 24 and data[24] == 16:
        raise DecodeError("png_16bit", "16-bit PNGs are not accepted; save as 8-bit")
    if im.mode not in {"RGB", "RGBA", "L", "LA", "P", "1", "RGBX", "YCbCr"}:
        raise DecodeError("unsupported_mode", f"pixel format {im.mode!r} is not accepted")


def _check_complete(data: bytes, fmt: str) -> None:
    """Refuse cut-off files from their structure, so the verdict never rests on grey padding even
    if some code in the process sets Pillow's global LOAD_TRUNCATED_IMAGES."""
    if fmt == "jpeg":
        # The last start-of-scan must be followed by an end-of-image marker (an EXIF thumbnail
        # brings its own pair earlier in the file, so only the last ones count).
        complete = data.rfind(b"\xff\xd9") > data.rfind(b"\xff\xda") > 0
    elif fmt == "png":
        iend = data.rfind(b"IEND")  # chunk type, then its 4-byte CRC
        complete = iend > 0 and iend + 8 <= len(data)
    elif fmt == "webp":
        complete = int.from_bytes(data[4:8], "little") + 8 <= len(data)
    else:
        complete = _isobmff_complete(data)
    if not complete:
        raise DecodeError("corrupt", f"the {fmt.upper()} file is truncated")


def _isobmff_complete(data: bytes) -> bool:
    """HEIC is a chain of ISO-BMFF boxes; libheif decodes a cut-off file without complaint, so
    check that every top-level box fits inside the data."""
    pos = 0
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        if size == 1:  # 64-bit size follows the type
            size = int.from_bytes(data[pos + 8 : pos + 16], "big")
        elif size == 0:  # box runs to the end of the file
            return True
        if size < 8:
            return False
        pos += size
    return pos == len(data)


def _jpeg_scale(size: tuple[int, int], limits: DecodeLimits) -> int:
    """The largest DCT reduction (1/2, 1/4, 1/8) that keeps the long side >= the target."""
    return reduction_factor(max(size), limits.target_long_side)


def reduction_factor(long_side: int, target: int) -> int:
    """The largest of 8, 4 and 2 that keeps `long_side` >= `target` when divided by it (1: none)."""
    return next((f for f in (8, 4, 2) if -(-long_side // f) >= target), 1)


def reduce_whole(image: NDArray[np.uint8], target: int) -> tuple[NDArray[np.uint8], int]:
    """(`image` reduced as the decoder's DCT scaling would have, factor): block means over
    factor x factor pixels, with the long side kept >= `target`; the image itself and 1 when
    no reduction fits. Rows and columns past the last whole block are left out."""
    h, w = image.shape[:2]
    f = reduction_factor(max(h, w), target)
    if f == 1:
        return image, 1
    hs, ws = h // f, w // f
    small = cv2.resize(image[: hs * f, : ws * f], (ws, hs), interpolation=cv2.INTER_AREA)
    return np.asarray(small, np.uint8), f


_IMREAD = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}
# EXIF orientation -> the OpenCV operations that make the image upright (EXIF 2.3, tag 0x0112).
_UPRIGHT: dict[int, list[Callable[[Any], Any]]] = {
    2: [lambda a: cv2.flip(a, 1)],
    3: [lambda a: cv2.rotate(a, cv2.ROTATE_180)],
    4: [lambda a: cv2.flip(a, 0)],
    5: [cv2.transpose],
    6: [lambda a: cv2.rotate(a, cv2.ROTATE_90_CLOCKWISE)],
    7: [cv2.transpose, lambda a: cv2.rotate(a, cv2.ROTATE_180)],
    8: [lambda a: cv2.rotate(a, cv2.ROTATE_90_COUNTERCLOCKWISE)],
}


# Bytes per pixel a decode allocates at its peak (JPEG at its DCT scale): OpenCV's JPEG decode
# writes BGR directly; its PNG decode holds about twice that (measured); HEIC goes through
# Pillow (4 bytes per pixel) and three more copies; "pillow": PNG/WebP decoded by Pillow and
# reduced at once (4 bytes per pixel, 1 more for a palette image converted first).
_PEAK_BYTES_PER_PX = {"jpeg": 3, "png": 6, "webp": 6, "heic": 12, "pillow": 5}


def decode_cost(size: tuple[int, int], fmt: str, scale: int) -> int:
    """Peak bytes of pixels decoding a `size` photo of `fmt` at DCT `scale` allocates."""
    w, h = -(-size[0] // scale), -(-size[1] // scale)
    return w * h * _PEAK_BYTES_PER_PX[fmt]


def _decode_pixels(data: bytes, fmt: str, im: Image.Image, scale: int) -> NDArray[np.uint8]:
    """Upright BGR pixels. JPEG, PNG and WebP go through OpenCV, the decoder training uses, so
    served pixels match trained pixels; Pillow only read the header. HEIC needs libheif."""
    if fmt == "heic":
        im.load()
        upright = ImageOps.exif_transpose(im) or im
        return np.asarray(cv2.cvtColor(np.asarray(upright.convert("RGB")), cv2.COLOR_RGB2BGR))
    buf = np.frombuffer(data, np.uint8)
    img = cv2.imdecode(buf, _IMREAD[scale] | cv2.IMREAD_IGNORE_ORIENTATION)
    if img is None:
        raise DecodeError("corrupt", f"the {fmt.upper()} image data cannot be decoded")
    for op in _UPRIGHT.get(_orientation(im, fmt), []):
        img = op(img)
    return np.ascontiguousarray(img, dtype=np.uint8)


def _decode_reduced(im: Image.Image, fmt: str, factor: int) -> NDArray[np.uint8]:
    """Upright BGR pixels of a PNG or WebP reduced by `factor` as `reduce_whole` would (block
    means over whole blocks), without an OpenCV copy of the full image."""
    orientation = _orientation(im, fmt)
    im.load()
    if im.mode not in ("RGB", "RGBA", "L", "LA"):
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    w, h = im.size
    small = im.reduce(factor, box=(0, 0, w // factor * factor, h // factor * factor))
    img = cv2.cvtColor(np.asarray(small.convert("RGB")), cv2.COLOR_RGB2BGR)
    for op in _UPRIGHT.get(orientation, []):
        img = op(img)
    return np.ascontiguousarray(img, dtype=np.uint8)


def _orientation(im: Image.Image, fmt: str) -> int:
    """The EXIF orientation, read without decoding pixels. Pillow's `getexif` on a PNG decodes
    the whole image (192 MB for a 64 MP photo) when no eXIf chunk precedes the pixel data, so a
    PNG's orientation comes only from an eXIf chunk before it."""
    try:
        if fmt == "png":
            raw = im.info.get("exif")
            if not raw:
                return 1
            exif = Image.Exif()
            exif.load(raw)
        else:
            exif = im.getexif()
        return int(exif.get(0x0112, 1))
    except (OSError, SyntaxError, ValueError, TypeError):  # unreadable EXIF: keep as stored
        return 1


def decode_photo(
    data: bytes,
    *,
    filename: str | None = None,
    content_type: str | None = None,
    limits: DecodeLimits | None = None,
    budget: DecodeBudget | None = None,
    sha256: str | None = None,
) -> DecodedPhoto:
    """Check and decode one uploaded photo; raise `DecodeError` (a `DataError`) if it is refused.

    `filename` and `content_type` are what the client declared; they are checked against the
    file's signature but never used as a path. `budget`: the decode's peak memory is reserved
    there (from the header, before any pixel is allocated) for as long as it runs. `sha256`:
    the bytes' hex digest when the caller has hashed them already.
    """
    limits = limits or DecodeLimits()
    if filename is not None:
        check_filename(filename)
    if len(data) == 0:
        raise DecodeError("empty", "the file is empty (0 bytes)")
    if len(data) > limits.max_bytes:
        raise DecodeError(
            "too_large",
            f"{len(data):,} bytes is over the limit of {limits.max_bytes:,} bytes"
            f" ({limits.max_bytes / MB:g} MB)",
        )
    fmt = sniff_format(data)
    check_declared_type(fmt, filename, content_type)
    im = _open_lazy(data, fmt)
    _check_header(im, data, fmt, limits)
    _check_complete(data, fmt)
    scale = _jpeg_scale(im.size, limits) if fmt == "jpeg" else 1
    # PNG and WebP to be reduced go through Pillow: its decode holds 4 bytes a pixel, OpenCV's
    # PNG decode about 6 (measured: 370 MB for one 64 MP PNG).
    lossless = fmt in ("png", "webp") and limits.reduce_lossless
    factor = reduction_factor(max(im.size), limits.target_long_side) if lossless else 1
    cost = decode_cost(im.size, "pillow" if factor > 1 else fmt, scale)
    # Reserved before any pixel is allocated; a refusal here is the budget's own DecodeError.
    with budget.hold(cost) if budget else nullcontext():
        try:
            if factor > 1:
                image, scale = _decode_reduced(im, fmt, factor), factor
            else:
                image = _decode_pixels(data, fmt, im, scale)
        except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
            why = f"the image data is truncated or corrupt ({exc})"
            raise DecodeError("corrupt", why) from None
        if fmt != "jpeg" and limits.reduce_lossless and scale == 1:
            image, scale = reduce_whole(image, limits.target_long_side)
    return DecodedPhoto(
        image=image,
        format=fmt,
        media_type=MEDIA_TYPES[fmt],
        original_size=im.size,
        scale=scale,
        sha256=sha256 or hashlib.sha256(data).hexdigest(),
        byte_size=len(data),
    )
