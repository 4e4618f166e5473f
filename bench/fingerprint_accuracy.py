"""Reused-photo detection on rendered photos: caught copies and false matches per threshold.

Each photo of a rendered data set (held-out seed) is decoded and gated the way the service does
it (qc_model.decode + qc_model.gate) and fingerprinted (qc_model.fingerprint). Each one is then
copied `--copies` times the way a cheat would: rotated up to 10 degrees, cropped up to 10 %,
resized to 50-100 %, brightness +-20 %, re-encoded as a JPEG of quality 60-95 (which also strips
EXIF). A copy is caught when its hash is within the threshold of its original's; a false match is
a pair of originals of different pieces within the threshold.

nice -n 10 python bench/bench_fingerprint.py accuracy --data DIR --copies 3
(DIR from: kito data synth --out DIR --count 400 --size 1024 --photos-per-piece 2 --seed 29001)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from qc_model.decode import DecodeError, decode_photo
from qc_model.fingerprint import (
    FRAME_MAT,
    Fingerprint,
    cell_overlap,
    hamming,
    photo_fingerprint,
    same_photo,
)
from qc_model.gate import check_photo
from qc_model.manifest import Manifest


@dataclass(frozen=True)
class Copy:
    angle: float
    crop: float
    scale: float
    brightness: float
    quality: int

    def describe(self) -> str:
        return (
            f"rot {self.angle:+.1f} crop {self.crop:.0%} scale {self.scale:.0%}"
            f" bright {self.brightness:+.0%} q{self.quality}"
        )


def random_copy(rng: np.random.Generator) -> Copy:
    return Copy(
        angle=float(rng.uniform(-10, 10)),
        crop=float(rng.uniform(0, 0.10)),
        scale=float(rng.uniform(0.5, 1.0)),
        brightness=float(rng.uniform(-0.2, 0.2)),
        quality=int(rng.integers(60, 96)),
    )


def make_copy(image: NDArray[np.uint8], c: Copy, rng: np.random.Generator) -> bytes:
    """The re-shot file: rotate (frame kept, edges replicated), crop `c.crop` of the area off
    random sides, resize, change brightness, encode as JPEG (no EXIF)."""
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), c.angle, 1.0)
    out = cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REPLICATE)
    keep = np.sqrt(1 - c.crop)  # the kept fraction of each side
    cw, ch = round(w * keep), round(h * keep)
    x0 = int(rng.integers(0, w - cw + 1))
    y0 = int(rng.integers(0, h - ch + 1))
    out = out[y0 : y0 + ch, x0 : x0 + cw]
    size = (max(1, round(cw * c.scale)), max(1, round(ch * c.scale)))
    out = cv2.resize(out, size, interpolation=cv2.INTER_AREA)
    out = np.clip(out.astype(np.float32) * (1 + c.brightness), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, c.quality])
    assert ok
    return buf.tobytes()


def fingerprint_bytes(data: bytes) -> tuple[Fingerprint, bool, float]:
    """(fingerprint, whether the gate passes the photo, the fingerprint's own ms) of a photo
    file, decoded and gated as the service does."""
    photo = decode_photo(data)
    gate = check_photo(photo.image)
    t0 = time.perf_counter()
    fp = photo_fingerprint(photo.image, gate.mat)
    return fp, gate.passed, (time.perf_counter() - t0) * 1000


def run(data: Path, copies: int, seed: int, thresholds: list[int], limit: int = 0) -> None:
    records = Manifest.read(data).records
    records = records[:limit] if limit else records
    rng = np.random.default_rng(seed)
    originals: list[Fingerprint] = []
    pieces: list[str] = []
    pairs: list[tuple[int, Fingerprint, bool, str]] = []  # (original, copy, copy passes, how)
    costs: list[float] = []
    refused = 0
    for i, r in enumerate(tqdm(records, desc="photos", unit="photo")):
        raw = (data / r.image).read_bytes()
        fp, _, ms = fingerprint_bytes(raw)
        costs.append(ms)
        originals.append(fp)
        pieces.append(r.piece_id)
        image = np.asarray(cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR), np.uint8)
        for _ in range(copies):
            c = random_copy(rng)
            try:
                cfp, ok, _ = fingerprint_bytes(make_copy(image, c, rng))
            except DecodeError:  # too small to be sent at all: no reuse risk
                refused += 1
                continue
            pairs.append((i, cfp, ok, f"{r.image} {c.describe()}"))
    hashes = np.array([f.phash for f in originals], dtype=np.uint64)
    dist = np.bitwise_count(hashes[:, None] ^ hashes[None, :])
    piece = np.array(pieces)
    different = np.triu(piece[:, None] != piece[None, :], k=1)
    n_diff = int(different.sum())
    near = [(int(a), int(b)) for a, b in np.argwhere(different & (dist <= max(thresholds)))]
    passed = np.array([p for _, _, p, _ in pairs])
    mat_frame = sum(f.frame == FRAME_MAT for f in originals)
    print(
        f"{len(records)} photos ({mat_frame} hashed in the mat frame), {len(pairs)} copies"
        f" ({int(passed.sum())} passed by the gate; {refused} more refused by decode as too"
        f" small), {n_diff} pairs of photos of different pieces; data {data}"
    )
    print(
        "| hash radius (bits of 64) | copies caught | copies the gate passes, caught |"
        " false matches, different pieces | hash alone: false matches |"
    )
    print("|---|---|---|---|---|")
    for t in thresholds:
        caught = np.array([same_photo(originals[i], c, t) for i, c, _, _ in pairs])
        fm = sum(same_photo(originals[a], originals[b], t) for a, b in near if dist[a, b] <= t)
        fm_hash = int((dist[different] <= t).sum())
        print(
            f"| {t} | {caught.mean():.2%} ({int(caught.sum())}/{len(caught)}) |"
            f" {caught[passed].mean():.2%} ({int(caught[passed].sum())}/{int(passed.sum())}) |"
            f" {fm / max(1, n_diff):.3%} ({fm}) | {fm_hash / max(1, n_diff):.3%} ({fm_hash}) |"
        )
    cd = np.array([hamming(originals[i].phash, c.phash) for i, c, _, _ in pairs])
    print("copy hash distance percentiles 50/90/99/max:", np.percentile(cd, [50, 90, 99, 100]))
    print("fingerprint ms per photo (after the gate) p50/p90:", np.percentile(costs, [50, 90]))
    t = thresholds[len(thresholds) // 2]
    missed = [
        (bool(p), cd[k], why(originals[i], c), how)
        for k, (i, c, p, how) in enumerate(pairs)
        if not same_photo(originals[i], c, t)
    ]
    for p, d, w, how in sorted(missed, reverse=True)[:8]:
        print(
            f"  missed at radius {t}: hash {d} bits, {w},"
            f" gate {'passes' if p else 'refuses'}: {how}"
        )


def why(a: Fingerprint, b: Fingerprint) -> str:
    overlap = (
        f"{cell_overlap(a.cells, b.cells):.2f}"
        if a.cells is not None and b.cells is not None
        else "-"
    )
    return f"cells overlap {overlap}, frames {a.frame}/{b.frame}"
