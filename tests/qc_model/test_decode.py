"""Safe decode: every accepted format decodes upright; every refused input names its reason."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from qc_model.decode import DecodedPhoto, DecodeError, DecodeLimits, decode_photo, sniff_format
from qc_model.errors import DataError

# The sample builders live beside the upload tests, which post the very same files.
_spec = importlib.util.spec_from_file_location(
    "photo_samples", Path(__file__).parents[1] / "serving" / "photo_samples.py"
)
assert _spec and _spec.loader
samples = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("photo_samples", samples)
_spec.loader.exec_module(samples)

GOOD = samples.good_photos()
BAD = samples.bad_photos()


@pytest.mark.parametrize("case", sorted(GOOD))
def test_accepted_formats_decode_to_bgr(case: str) -> None:
    data, name, ctype = GOOD[case]
    photo = decode_photo(data, filename=name, content_type=ctype)
    assert isinstance(photo, DecodedPhoto)
    assert photo.image.dtype.name == "uint8" and photo.image.shape == (240, 320, 3)
    assert photo.size == (320, 240) and photo.original_size == (320, 240)
    assert photo.sha256 == hashlib.sha256(data).hexdigest() and photo.byte_size == len(data)
    assert photo.media_type.startswith("image/")


def test_channels_are_bgr() -> None:
    # The sample scene is built as a BGR array whose blue channel grows to the right and whose
    # red channel is constant 128; decoding must give that array back.
    img = decode_photo(samples.pil_bytes("PNG")).image
    assert img[120, 300, 0] > 200 and img[120, 5, 0] < 20
    assert img[230, 5:, 2].min() == img[230, 5:, 2].max() == 128  # row clear of the disc


@pytest.mark.parametrize("case", sorted(BAD))
def test_refused_inputs_name_their_reason(case: str) -> None:
    data, name, ctype, code = BAD[case]
    with pytest.raises(DecodeError) as info:
        decode_photo(data, filename=name, content_type=ctype)
    assert info.value.code == code, str(info.value)
    assert isinstance(info.value, DataError)  # so the CLI and the API map it to a user error
    assert info.value.message


def test_exif_orientation_is_applied() -> None:
    photo = decode_photo(samples.jpeg_rotated_exif(320, 240))
    assert photo.original_size == (320, 240)
    assert photo.size == (240, 320)
    # The dark disc sits at the stored image's top-left third; after a 90° clockwise turn it is
    # in the top-right part.
    gray = photo.image.mean(axis=2)
    assert gray[:160, 120:].min() < 40 and gray[:160, :100].min() > 40


def test_large_jpeg_is_decoded_at_reduced_scale_keeping_the_target() -> None:
    data = samples.jpeg(1600, 1200)
    photo = decode_photo(data, limits=DecodeLimits(target_long_side=300))
    assert photo.scale == 4  # 1/8 would give a 200 px long side, under the target
    assert photo.size == (400, 300) and photo.original_size == (1600, 1200)
    full = decode_photo(data, limits=DecodeLimits(target_long_side=1600))
    assert full.scale == 1 and full.size == (1600, 1200)


def test_png_is_never_reduced() -> None:
    photo = decode_photo(
        samples.pil_bytes("PNG", 1200, 800), limits=DecodeLimits(target_long_side=256)
    )
    assert photo.scale == 1 and photo.size == (1200, 800)


def test_limits_are_configurable() -> None:
    data = samples.jpeg()
    with pytest.raises(DecodeError, match="too_large"):
        decode_photo(data, limits=DecodeLimits(max_bytes=len(data) - 1))
    with pytest.raises(DecodeError, match="decompression_bomb"):
        decode_photo(data, limits=DecodeLimits(max_pixels=320 * 240 - 1))
    with pytest.raises(DecodeError, match="too_small"):
        decode_photo(data, limits=DecodeLimits(min_side=241))
    assert decode_photo(data, limits=DecodeLimits(max_pixels=320 * 240)).size == (320, 240)


@pytest.mark.parametrize(
    ("head", "fmt"),
    [
        (b"\xff\xd8\xff\xe0", "jpeg"),
        (b"\x89PNG\r\n\x1a\n", "png"),
        (b"RIFF\0\0\0\0WEBPVP8 ", "webp"),
        (b"\0\0\0\x18ftypheic", "heic"),
        (b"\0\0\0\x18ftypmif1", "heic"),
    ],
)
def test_sniff_format(head: bytes, fmt: str) -> None:
    assert sniff_format(head + b"\0" * 32) == fmt


@pytest.mark.parametrize(
    "name", ["a\x00.jpg", "dir\\a.jpg", "..", "a\nb.jpg", "/abs.jpg", "x" * 129]
)
def test_bad_filenames(name: str) -> None:
    with pytest.raises(DecodeError, match="bad_filename"):
        decode_photo(samples.jpeg(), filename=name)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "HEIF"])
def test_truncation_is_refused_even_if_pillow_is_told_to_tolerate_it(
    fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import ImageFile

    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    data = samples.pil_bytes(fmt, 400, 300)
    assert decode_photo(data).size == (400, 300)
    with pytest.raises(DecodeError) as info:
        decode_photo(data[: len(data) * 2 // 3])
    assert info.value.code == "corrupt"
    with pytest.raises(DecodeError, match="corrupt"):
        decode_photo(data[:-1])


def test_jpeg_with_exif_thumbnail_and_trailer_is_complete() -> None:
    from PIL import Image

    exif = Image.Exif()
    exif[0x010F] = "KitoPhone"
    data = samples.jpeg(400, 300, exif=exif.tobytes()) + b"SAMSUNG-TRAILER\xff\xd9-ish"
    assert decode_photo(data).size == (400, 300)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_matches_pillow(orientation: int) -> None:
    from PIL import Image, ImageOps

    exif = Image.Exif()
    exif[0x0112] = orientation
    data = samples.pil_bytes("PNG", 200, 140, exif=exif.tobytes())
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    got = decode_photo(data).image
    assert got.shape == expected.shape
    assert np.array_equal(got[:, :, ::-1], expected)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_pixels_match_the_training_decoder(fmt: str) -> None:
    # Training reads photos with cv2.imread; served pixels must be the same pixels.
    data = samples.pil_bytes(fmt, 400, 300)
    expected = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert np.array_equal(decode_photo(data).image, expected)


def test_reduced_jpeg_matches_opencv_reduced_decode() -> None:
    data = samples.jpeg(1600, 1200)
    expected = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_REDUCED_COLOR_4)
    got = decode_photo(data, limits=DecodeLimits(target_long_side=300)).image
    assert np.array_equal(got, expected)
