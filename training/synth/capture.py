"""Capture conditions: how an artisan's phone photo goes wrong, and how badly (sampled)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
    flare: float = 0.0  # veiling glare: grey levels added to the blacks (ink is never 0)
    flash: float = 0.0  # the phone's flash: a bright hotspot on the glossy card
    uneven: float = 0.0
    shadow: float = 0.0
    defocus: float = 0.0  # sigma, px at 1024
    motion: float = 0.0  # length, px at 1024
    noise: float = 1.0  # sigma in 0..255
    jpeg: int = 92
    lowres: float = 1.0
    background: str = "cloth"
    light: tuple[float, float, float] = (-0.45, -0.6, 1.0)


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
    for name in force:
        applied.add(name)
        for a, b in EXCLUSIVE:
            if name in (a, b):
                applied.discard(b if name == a else a)
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
    c.flare = float(rng.uniform(6, 22) * (1.6 if "overexposed" in applied else 1.0))
    if "overexposed" in applied and rng.random() < 0.5:
        c.flash = 0.4 + s(0, 0.8)
    return c
