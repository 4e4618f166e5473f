"""Capture effects on pixels: light falloff and shadows, white balance, blur, sensor noise."""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from training.synth.capture import Conditions


def gaussian_blur(img: NDArray, sigma: float) -> NDArray:
    """Gaussian blur; wide ones run on a reduced copy (same look, a fraction of the cost at
    12 MP, where a 25 px defocus kernel would take a second)."""
    if sigma <= 4.0:
        return cv2.GaussianBlur(img, (0, 0), sigma)
    f = sigma / 2.0
    h, w = img.shape[:2]
    small = cv2.resize(
        img, (max(1, round(w / f)), max(1, round(h / f))), interpolation=cv2.INTER_AREA
    )
    small = cv2.GaussianBlur(small, (0, 0), sigma / f)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


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
    if kind == "flash":
        # Flash straight ahead: a hotspot near the frame centre, mirrored by the card's gloss.
        cx, cy = 0.5 + rng.normal(0, 0.08), 0.5 + rng.normal(0, 0.08)
        spot = np.exp(-((xs - cx) ** 2 + ((ys - cy) * 0.75) ** 2) / 0.02)
        return (1 + amount * spot).astype(np.float32)
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


_BANK: dict[tuple[int, int], NDArray[np.int16]] = {}
_BANK_SHAPE = (1100, 1400)
_BANK_SCALE = 16.0  # the bank holds noise x 16 as int16: sub-level precision, half the memory


def _bank(h: int, w: int) -> NDArray[np.int16]:
    """The noise bank for frames up to (h, w): one default size, or one per 512-px class for
    larger frames, each seeded by its own size so the content never depends on which photo a
    process rendered first."""
    shape = _BANK_SHAPE
    if h > shape[0] or w > shape[1]:
        shape = (-(-h // 512) * 512 + 512, -(-w // 512) * 512 + 512)
    if shape not in _BANK:
        if len(_BANK) > 1:  # keep the default bank and at most one large one
            for key in [k for k in _BANK if k != _BANK_SHAPE]:
                del _BANK[key]
        g = np.random.default_rng(12345 if shape == _BANK_SHAPE else [12345, *shape])
        lum = g.standard_normal(shape, dtype=np.float32)
        chroma = g.standard_normal((shape[0] // 2, shape[1] // 2, 3), dtype=np.float32)
        chroma = cv2.resize(chroma, shape[::-1], interpolation=cv2.INTER_LINEAR)
        _BANK[shape] = np.round((lum[..., None] + 0.5 * chroma) * _BANK_SCALE).astype(np.int16)
    return _BANK[shape]


def _noise_tile(h: int, w: int, rng: np.random.Generator) -> NDArray[np.int16]:
    """Sensor noise x 16 (a luminance part plus a half-strength, coarser chroma part) for a
    frame, cut from a fixed per-process bank at a seeded offset.

    Drawing 36 M normals per 12 MP photo would cost more than the rest of the render; a fixed
    bank with a seeded offset is just as deterministic and looks the same.
    """
    bank = _bank(h, w)
    bh, bw = bank.shape[:2]
    oy = int(rng.integers(bh - h + 1))
    ox = int(rng.integers(bw - w + 1))
    return bank[oy : oy + h, ox : ox + w]


def _motion_blur(img: NDArray[np.uint8], length: int, angle_deg: float) -> NDArray[np.uint8]:
    """Shake along one direction: turn the frame so the shake is horizontal, box-filter the
    rows, turn it back. A 2-D line kernel costs ten times more at these lengths. Long shakes
    (12 MP photos) run on a reduced copy: the smear hides the lost detail."""
    h, w = img.shape[:2]
    f = max(1.0, length / 32.0)
    src = (
        img
        if f == 1.0
        else cv2.resize(img, (round(w / f), round(h / f)), interpolation=cv2.INTER_AREA)
    )
    sh, sw = src.shape[:2]
    c, s = abs(np.cos(np.radians(angle_deg))), abs(np.sin(np.radians(angle_deg)))
    side_w, side_h = int(np.ceil(sw * c + sh * s)) + 2, int(np.ceil(sw * s + sh * c)) + 2
    fwd = cv2.getRotationMatrix2D((sw / 2, sh / 2), angle_deg, 1.0)
    fwd[:, 2] += ((side_w - sw) / 2, (side_h - sh) / 2)
    big = cv2.warpAffine(
        src, fwd, (side_w, side_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )
    big = cv2.blur(big, (max(2, round(length / f)), 1))
    out = cv2.warpAffine(big, cv2.invertAffineTransform(fwd), (sw, sh), flags=cv2.INTER_LINEAR)
    return out if f == 1.0 else cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR)


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
    if c.flash > 0:
        light = light * _field((h, w), rng, "flash", c.flash)
    # Light and white balance in one smooth low-resolution field, enlarged once.
    small = light[..., None] * np.asarray(gain, np.float32)
    field = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    out = cv2.multiply(img, field, dtype=cv2.CV_8U)
    if c.defocus > 0:
        out = gaussian_blur(out, c.defocus * scale)
    if c.motion > 0:
        out = _motion_blur(out, max(3, int(c.motion * scale)), rng.uniform(0, 180))
    if c.noise > 0 or c.flare > 0:
        # Glare lifts the blacks (in the same pass as the sensor noise, so it costs nothing).
        noise = _noise_tile(h, w, rng)
        keep = 1.0 - c.flare / 255.0
        out = cv2.addWeighted(out, keep, noise, c.noise / _BANK_SCALE, c.flare, dtype=cv2.CV_8U)
    return out


def capture_frame(
    image: NDArray[np.uint8], hom: NDArray[np.float64], cond: Conditions, rng: np.random.Generator
) -> tuple[NDArray[np.uint8], NDArray[np.float64]]:
    """Capture effects, then the phone's own downscale for low-resolution photos."""
    img = apply_capture(image, cond, rng)
    if cond.lowres < 1.0:
        h, w = img.shape[:2]
        size = (max(64, round(w * cond.lowres)), max(48, round(h * cond.lowres)))
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        sx, sy = size[0] / w, size[1] / h
        s = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]])
        hom = s @ hom
    return img, hom
