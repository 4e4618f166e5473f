"""Capture conditions: how an artisan's phone photo goes wrong, sampled and applied to pixels."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from numpy.typing import NDArray

from training.synth.backgrounds import BACKGROUNDS

# How often each condition occurs at difficulty 0.5 (doubling at difficulty 1).
BASE_RATE = {
    "rotation": 0.25,
    "perspective": 0.2,
    "distance_far": 0.1,
    "distance_near": 0.08,
    "defocus_blur": 0.1,
    "motion_blur": 0.08,
    "sensor_noise": 0.15,
    "jpeg_heavy": 0.1,
    "white_balance": 0.15,
    "overexposed": 0.07,
    "underexposed": 0.08,
    "uneven_light": 0.15,
    "shadow": 0.12,
    "clutter": 0.15,
    "partly_out_of_frame": 0.06,
    "low_resolution": 0.06,
    "no_mat": 0.05,
    "mat_cut_off": 0.07,
}
EXCLUSIVE = [
    ("distance_far", "distance_near"),
    ("overexposed", "underexposed"),
    ("no_mat", "mat_cut_off"),
    ("distance_far", "partly_out_of_frame"),
]


@dataclass
class Conditions:
    applied: set[str]
    roll: float = 0.0
    tilt: float = 0.0
    tilt_az: float = 0.0
    fill: float = 0.82  # mat width / frame width
    offset: tuple[float, float] = (0.0, 0.0)  # frame fractions
    exposure: float = 1.0
    wb: tuple[float, float, float] = (1.0, 1.0, 1.0)  # BGR gains
    vignette: float = 0.0
    uneven: float = 0.0
    shadow: float = 0.0
    defocus: float = 0.0  # sigma, px at 1024
    motion: float = 0.0  # length, px at 1024
    noise: float = 1.0  # sigma in 0..255
    jpeg: int = 92
    lowres: float = 1.0
    background: str = "cloth"
    light: tuple[float, float, float] = (-0.45, -0.6, 1.0)
    extra: dict[str, float] = field(default_factory=dict)


def sample_conditions(
    rng: np.random.Generator, difficulty: float, force: tuple[str, ...] = ()
) -> Conditions:
    """Independent draws per condition, scaled by `difficulty` in [0, 1] (0 = ideal photos).

    Conditions named in `force` are always applied (and win over ones they exclude).
    """
    d = float(np.clip(difficulty, 0, 1))
    applied = {c for c, p in BASE_RATE.items() if rng.random() < min(0.9, 2 * d * p)}
    for a, b in EXCLUSIVE:
        if a in applied and b in applied:
            applied.discard(a if rng.random() < 0.5 else b)
    for c in force:
        applied.add(c)
        for a, b in EXCLUSIVE:
            if c in (a, b):
                applied.discard(b if c == a else a)
    strength = 0.5 + 0.5 * d  # harder data sets also get stronger versions

    def s(lo: float, hi: float) -> float:
        return float(lo + (hi - lo) * rng.uniform(0.25, 1.0) * strength)

    c = Conditions(applied)
    c.background = str(rng.choice(BACKGROUNDS, p=[0.35, 0.25, 0.15, 0.15, 0.1]))
    el = np.radians(rng.uniform(45, 75))
    az = rng.uniform(0, 2 * np.pi)
    c.light = (float(np.cos(az) * np.cos(el)), float(np.sin(az) * np.cos(el)), float(np.sin(el)))
    c.roll = float(rng.uniform(-4, 4) * d)
    if "rotation" in applied:
        c.roll = float(rng.choice([-1, 1]) * (12 + s(0, 168)))
    c.tilt = float(rng.uniform(0, 5) * d)
    c.tilt_az = float(rng.uniform(0, 360))
    if "perspective" in applied:
        c.tilt = 14 + s(0, 24)
    c.fill = float(rng.uniform(0.74, 0.9))
    if "distance_far" in applied:
        c.fill = 0.62 - s(0, 0.3)
    if "distance_near" in applied:
        c.fill = 1.3 + s(0, 1.2)
    c.offset = (float(rng.normal(0, 0.02)), float(rng.normal(0, 0.02)))
    c.exposure = float(rng.uniform(0.92, 1.06))
    if "overexposed" in applied:
        c.exposure = 1.45 + s(0, 0.9)
    if "underexposed" in applied:
        c.exposure = 0.55 - s(0, 0.33)
    g = rng.normal(0, 0.02, 3)
    if "white_balance" in applied:
        warm = rng.choice([-1.0, 1.0]) * (0.1 + s(0, 0.16))
        g = g + np.array([-warm, 0.0, warm]) + rng.normal(0, 0.04, 3)
    c.wb = (float(1 + g[0]), float(1 + g[1]), float(1 + g[2]))
    c.vignette = float(rng.uniform(0.04, 0.18))
    if "uneven_light" in applied:
        c.uneven = 0.3 + s(0, 0.4)
    if "shadow" in applied:
        c.shadow = 0.3 + s(0, 0.35)
    c.defocus = 0.55
    if "defocus_blur" in applied:
        c.defocus = 2.0 + s(0, 4.5)
    if "motion_blur" in applied:
        c.motion = 6 + s(0, 20)
    c.noise = float(rng.uniform(0.8, 2.0))
    if "sensor_noise" in applied:
        c.noise = 5 + s(0, 12)
    c.jpeg = int(rng.integers(86, 96))
    if "jpeg_heavy" in applied:
        c.jpeg = round(38 - s(0, 30))
    if "low_resolution" in applied:
        c.lowres = 0.5 - s(0, 0.25)
    return c


def _field(
    shape: tuple[int, int], rng: np.random.Generator, kind: str, amount: float
) -> NDArray[np.float32]:
    """Multiplicative illumination field at 1/16 of the frame's resolution."""
    h, w = shape
    sh, sw = max(8, h // 16), max(8, w // 16)
    ys, xs = np.mgrid[0:sh, 0:sw].astype(np.float32)
    xs = (xs + 0.5) / sw
    ys = (ys + 0.5) / sh
    if kind == "vignette":
        # Phone lenses lose light towards the corners (cos^4 falloff and a small sensor).
        r2 = ((xs - 0.5) ** 2 + (ys - 0.5) ** 2) / 0.5
        return (1 - amount * r2).astype(np.float32)
    if kind == "uneven":
        ang = rng.uniform(0, 2 * np.pi)
        ramp = (xs - 0.5) * np.cos(ang) + (ys - 0.5) * np.sin(ang) + 0.5
        cx, cy = rng.uniform(0.2, 0.8, 2)
        spot = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / 0.15)
        f = 1 - amount * np.clip(ramp, 0, 1) + 0.25 * amount * spot
    else:
        # A soft-edged shadow of the phone or the artisan's arm across part of the frame.
        mask = np.zeros((sh, sw), np.float32)
        pts = np.stack([rng.uniform(-0.2, 1.2, 4) * sw, rng.uniform(-0.2, 1.2, 4) * sh], 1)
        edge = int(rng.integers(4))
        pts[:2, edge % 2] = 0 if edge < 2 else (sw if edge % 2 == 0 else sh) - 1
        cv2.fillPoly(mask, [cv2.convexHull(pts.astype(np.int32))], 1.0)
        mask = cv2.GaussianBlur(mask, (0, 0), rng.uniform(0.6, 2.0))
        f = 1 - amount * mask
    return f.astype(np.float32)


_BANK: dict[int, NDArray[np.int16]] = {}
_BANK_SHAPE = (1100, 1400)
_BANK_SCALE = 16.0  # the bank holds noise x 16 as int16: sub-level precision, half the memory


def _noise_tile(h: int, w: int, rng: np.random.Generator) -> NDArray[np.int16]:
    """Sensor noise x 16 (a luminance part plus a half-strength, coarser chroma part) for a
    frame, cut from a fixed per-process bank at a seeded offset.

    Drawing 36 M normals per 12 MP photo would cost more than the rest of the render; a fixed
    bank with a seeded offset is just as deterministic and looks the same.
    """
    if 0 not in _BANK:
        g = np.random.default_rng(12345)
        lum = g.standard_normal(_BANK_SHAPE, dtype=np.float32)
        chroma = g.standard_normal((_BANK_SHAPE[0] // 2, _BANK_SHAPE[1] // 2, 3), dtype=np.float32)
        chroma = cv2.resize(chroma, _BANK_SHAPE[::-1], interpolation=cv2.INTER_LINEAR)
        _BANK[0] = np.round((lum[..., None] + 0.5 * chroma) * _BANK_SCALE).astype(np.int16)
    bank = _BANK[0]
    bh, bw = bank.shape[:2]
    oy = int(rng.integers(bh - h + 1 if h <= bh else bh))
    ox = int(rng.integers(bw - w + 1 if w <= bw else bw))
    if h + oy > bh or w + ox > bw:
        reps = (-(-(h + oy) // bh), -(-(w + ox) // bw), 1)
        bank = np.tile(bank, reps)
    return bank[oy : oy + h, ox : ox + w]


def _motion_blur(img: NDArray[np.uint8], length: int, angle_deg: float) -> NDArray[np.uint8]:
    """Shake along one direction: turn the frame so the shake is horizontal, box-filter the
    rows, turn it back. A 2-D line kernel costs ten times more at these lengths."""
    h, w = img.shape[:2]
    side_w = (
        int(
            np.ceil(abs(w * np.cos(np.radians(angle_deg))) + abs(h * np.sin(np.radians(angle_deg))))
        )
        + 2
    )
    side_h = (
        int(
            np.ceil(abs(w * np.sin(np.radians(angle_deg))) + abs(h * np.cos(np.radians(angle_deg))))
        )
        + 2
    )
    fwd = cv2.getRotationMatrix2D((w / 2, h / 2), angle_deg, 1.0)
    fwd[:, 2] += ((side_w - w) / 2, (side_h - h) / 2)
    big = cv2.warpAffine(
        img, fwd, (side_w, side_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )
    big = cv2.blur(big, (length, 1))
    back = cv2.invertAffineTransform(fwd)
    return cv2.warpAffine(big, back, (w, h), flags=cv2.INTER_LINEAR)


def apply_capture(
    img: NDArray[np.uint8], c: Conditions, rng: np.random.Generator
) -> NDArray[np.uint8]:
    """Illumination, optics and sensor on a rendered frame (BGR uint8), in that physical order.

    Works in uint8 with saturating OpenCV arithmetic: saturation is what the sensor does anyway,
    and a 1024 px photo costs a few ms instead of tens in float.
    """
    h, w = img.shape[:2]
    scale = max(w, h) / 1024.0
    gain = [float(g) * c.exposure for g in c.wb]
    light = _field((h, w), rng, "vignette", c.vignette)
    if c.uneven > 0:
        light = light * _field((h, w), rng, "uneven", c.uneven)
    if c.shadow > 0:
        light = light * _field((h, w), rng, "shadow", c.shadow)
    # Light and white balance in one smooth low-resolution field, enlarged once.
    small = light[..., None] * np.asarray(gain, np.float32)
    field = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    out = cv2.multiply(img, field, dtype=cv2.CV_8U)
    if c.defocus > 0:
        out = cv2.GaussianBlur(out, (0, 0), c.defocus * scale)
    if c.motion > 0:
        out = _motion_blur(out, max(3, int(c.motion * scale)), rng.uniform(0, 180))
    if c.noise > 0:
        noise = _noise_tile(h, w, rng)
        out = cv2.addWeighted(out, 1.0, noise, c.noise / _BANK_SCALE, 0.0, dtype=cv2.CV_8U)
    return out
