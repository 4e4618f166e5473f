"""Photo fingerprints: one photo re-shot by a cheat keeps its hash, other pieces do not share it."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from qc_model.decode import decode_photo
from qc_model.fingerprint import (
    FRAME_MAT,
    FRAME_PHOTO,
    MATCH_BITS,
    Fingerprint,
    dct_hash,
    fingerprint_details,
    hamming,
    inside_photo,
    same_photo,
)
from qc_model.gate import check_photo
from qc_model.mat import DEFAULT_MAT

sys.path.insert(0, str(Path(__file__).parent))
from fingerprint_scenes import cheat_copy, jpeg, scene


def _fingerprint(data: bytes) -> dict[str, str]:
    photo = decode_photo(data)
    return fingerprint_details([photo.image], [check_photo(photo.image)])[0]


def _bits(fp: dict[str, str]) -> int:
    return int(fp["phash"], 16)


@pytest.fixture(scope="module")
def originals() -> list[dict[str, str]]:
    return [_fingerprint(jpeg(scene(seed))) for seed in range(6)]


def test_hash_is_taken_in_the_mat_frame(originals: list[dict[str, str]]) -> None:
    assert all(fp["frame"] == FRAME_MAT for fp in originals)
    assert all(len(fp["phash"]) == 16 for fp in originals)


@pytest.mark.parametrize(
    "change",
    [
        {"angle": 9.0, "crop": 0.0, "scale": 1.0, "brightness": 0.0, "quality": 90},
        {"angle": 0.0, "crop": 0.10, "scale": 1.0, "brightness": 0.0, "quality": 90},
        {"angle": 0.0, "crop": 0.0, "scale": 0.5, "brightness": 0.0, "quality": 90},
        {"angle": 0.0, "crop": 0.0, "scale": 1.0, "brightness": -0.2, "quality": 60},
        {"angle": -7.0, "crop": 0.08, "scale": 0.6, "brightness": 0.15, "quality": 65},
    ],
)
def test_a_cheats_copy_matches_its_original(
    originals: list[dict[str, str]], change: dict[str, float]
) -> None:
    for seed in (0, 3):
        copy = _fingerprint(cheat_copy(scene(seed), **change))  # type: ignore[arg-type]
        assert copy["frame"] == FRAME_MAT
        assert hamming(_bits(copy), _bits(originals[seed])) <= MATCH_BITS, (seed, change)


def test_photos_of_other_pieces_do_not_match(originals: list[dict[str, str]]) -> None:
    bits = [_bits(fp) for fp in originals]
    for i in range(len(bits)):
        for j in range(i + 1, len(bits)):
            assert hamming(bits[i], bits[j]) > MATCH_BITS, (i, j)


def test_without_a_mat_the_whole_photo_is_hashed() -> None:
    rng = np.random.default_rng(1)
    image = (rng.random((300, 400, 3)) * 255).astype(np.uint8)
    fp = _fingerprint(jpeg(image))
    assert fp["frame"] == "photo"
    assert hamming(_bits(fp), _bits(_fingerprint(jpeg(image, quality=70)))) <= MATCH_BITS


def test_dct_hash_ignores_brightness_and_contrast() -> None:
    rng = np.random.default_rng(2)
    grid = (rng.random((32, 32)) * 200).astype(np.uint8)
    brighter = np.clip(grid.astype(np.float32) * 1.2 + 10, 0, 255).astype(np.uint8)
    assert hamming(dct_hash(grid), dct_hash(brighter)) <= 2


def test_hashes_of_different_frames_never_match() -> None:
    # The same 64 bits in the mat's frame and the whole photo's (or a stored first-version
    # hash) say nothing about each other.
    h = 0x0123_4567_89AB_CDEF
    assert same_photo(Fingerprint(h, FRAME_MAT), Fingerprint(h, FRAME_MAT))
    assert not same_photo(Fingerprint(h, FRAME_MAT), Fingerprint(h, FRAME_PHOTO))
    assert not same_photo(Fingerprint(h, FRAME_MAT), Fingerprint(h, "mat"))


def _cut_left(img: np.ndarray, fraction: float) -> np.ndarray:
    return np.ascontiguousarray(img[:, round(img.shape[1] * fraction) :])


def test_what_lies_outside_the_photo_does_not_move_the_hash() -> None:
    # A third of the placement area is cut off by the frame. The cells there would hold the
    # photo's edge smeared outwards, so a dark edge (a shadow, a finger, a cheat's crop through
    # the piece) changed many bits; they count as paper instead.
    for seed in range(6):
        cut = _cut_left(scene(seed), 0.3)
        edge = cut.copy()
        edge[:, :2] = 30
        a, b = _fingerprint(jpeg(cut)), _fingerprint(jpeg(edge))
        assert a["frame"] == b["frame"] == FRAME_MAT
        assert hamming(_bits(a), _bits(b)) <= 2, seed
    # And a cheat's copy of such a photo (rotated, cut further, smaller, darker) still matches.
    cut = _cut_left(scene(3), 0.3)
    original = Fingerprint.from_json(_fingerprint(jpeg(cut)))
    copy = _fingerprint(cheat_copy(cut, angle=-6.0, crop=0.06, scale=0.8, brightness=-0.1))
    assert same_photo(original, Fingerprint.from_json(copy))


def test_cells_outside_the_photo_are_found() -> None:
    img = scene(0)
    mat = check_photo(img).mat
    assert mat is not None
    x0, y0, x1, y1 = DEFAULT_MAT.placement_area_mm
    whole = inside_photo(img.shape[:2], mat, (x0, y0, x1, y1), (64, 40))
    assert whole.all()
    left = inside_photo((img.shape[0], img.shape[1] // 2), mat, (x0, y0, x1, y1), (64, 40))
    assert left[:, :20].all() and not left[:, 40:].any()
