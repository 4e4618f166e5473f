"""What lies under and around the mat, in the table plane: cloth, wood, paper, a hand, clutter."""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

BACKGROUNDS = ("cloth", "wood", "paper", "concrete", "hand")

# Skin tones (BGR) of the artisans' hands.
_SKIN = [(60, 85, 125), (45, 65, 100), (75, 105, 150), (40, 55, 80)]


def _noise(shape: tuple[int, int], cell_px: float, rng: np.random.Generator) -> NDArray[np.float32]:
    gh = max(2, int(shape[0] / cell_px) + 2)
    gw = max(2, int(shape[1] / cell_px) + 2)
    grid = rng.uniform(-1, 1, (gh, gw)).astype(np.float32)
    return cv2.resize(grid, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def _muted(rng: np.random.Generator, n: int) -> NDArray[np.float32]:
    """n fabric dye colours (BGR): saturated enough to be prints, not neon."""
    hsv = np.stack(
        [rng.uniform(0, 180, n), rng.uniform(60, 200, n), rng.uniform(70, 220, n)], 1
    ).astype(np.uint8)
    return cv2.cvtColor(hsv[None], cv2.COLOR_HSV2BGR)[0].astype(np.float32)


def _cloth(
    xs: NDArray[np.float32],
    ys: NDArray[np.float32],
    shape: tuple[int, int],
    k: float,
    rng: np.random.Generator,
) -> NDArray[np.float32]:
    """Kanga / kitenge prints, checks or plain cotton, with weave and soft folds."""
    h, w = shape
    cols = _muted(rng, 3)
    style = rng.choice(["motif", "check", "stripes", "plain"])
    ang = rng.uniform(0, np.pi)
    u = xs * np.cos(ang) + ys * np.sin(ang)
    v = -xs * np.sin(ang) + ys * np.cos(ang)
    period = rng.uniform(15, 45)
    if style == "motif":  # repeated round motifs on a ground, as on a printed kitenge
        cu = np.mod(u, period) - period / 2
        cv = np.mod(v, period) - period / 2
        r = np.hypot(cu, cv) / (period / 2)
        idx = np.where(r < 0.45, 1, np.where(np.abs(r - 0.7) < 0.08, 2, 0))
    elif style == "check":
        idx = (
            (np.mod(u, period) < period / 2).astype(np.int32) + (np.mod(v, period) < period / 2)
        ) % 3
    elif style == "stripes":
        idx = np.clip((np.mod(u, period * 2) / (period * 2) * 3).astype(np.int32), 0, 2)
        idx = np.broadcast_to(idx, (h, w))
    else:
        idx = np.zeros((h, w), np.int32)
    img = cols[np.broadcast_to(idx, (h, w))]
    img = cv2.GaussianBlur(img, (0, 0), max(0.5, 0.4 * k))  # printed dye bleeds a little
    folds = _noise(shape, 70 * k, rng)
    return img * (1 + 0.12 * folds)[..., None]


def _wood(
    xs: NDArray[np.float32],
    ys: NDArray[np.float32],
    shape: tuple[int, int],
    k: float,
    rng: np.random.Generator,
) -> NDArray[np.float32]:
    """A table of planks: per-plank tone, long irregular grain lines, dark seams between."""
    base = np.array(
        rng.choice([[40, 70, 110], [60, 95, 140], [30, 50, 80], [70, 110, 150]]), np.float32
    )
    ang = rng.choice([0.0, np.pi / 2]) + rng.uniform(-0.05, 0.05)
    u = xs * np.cos(ang) + ys * np.sin(ang)  # along the grain
    v = -xs * np.sin(ang) + ys * np.cos(ang)  # across the planks
    plank_w = rng.uniform(70, 160)
    plank = np.floor(v / plank_w)
    tone = 1 + 0.12 * np.sin(plank * 12.9898 + rng.uniform(0, 6.28))
    # Grain: irregular lines along the plank, bent by slow noise; long fibres on top.
    warp = _noise(shape, 25 * k, rng) * 9 + plank * 37.0
    rings = np.abs(np.sin((v + warp + 0.01 * u) * rng.uniform(0.35, 0.7)))
    grain = np.clip((rings - 0.8) * 5, 0, 1)  # thin dark latewood lines
    gh, gw = max(2, int(shape[0] / (1.5 * k)) + 2), max(2, int(shape[1] / (1.5 * k)) + 2)
    fib = cv2.resize(
        rng.uniform(-1, 1, (gh, max(2, gw // 20))).astype(np.float32), (shape[1], shape[0])
    )
    d_seam = np.abs(np.mod(v, plank_w) - plank_w / 2)
    seam = np.clip((d_seam - (plank_w / 2 - 1.2)) / 1.2, 0, 1)
    shade = tone * (1 - 0.18 * grain + 0.04 * fib) * (1 - 0.55 * seam)
    return base * shade[..., None]


def _concrete(shape: tuple[int, int], k: float, rng: np.random.Generator) -> NDArray[np.float32]:
    g = rng.uniform(90, 160)
    n = 0.08 * _noise(shape, 25 * k, rng) + 0.05 * _noise(shape, 2 * k, rng)
    return np.full((*shape, 3), g, np.float32) * (1 + n)[..., None]


def plane_texture(
    kind: str,
    shape: tuple[int, int],
    k: float,
    origin: tuple[float, float],
    rng: np.random.Generator,
    card_mm: tuple[float, float] | None = None,
) -> NDArray[np.uint8]:
    """A (H, W, 3) BGR texture of the table plane at k px/mm; origin is the window's mm corner.

    Drawn at a quarter of the resolution and enlarged (a fine weave is added at full size):
    the table matters less than the card and the piece, and would otherwise cost a third of the
    photo.
    """
    full = shape
    f = 4 if k < 6 else 8
    shape = (max(2, shape[0] // f), max(2, shape[1] // f))
    k = k / f
    origin = (origin[0] + 0.5 * (f - 1) / (k * f), origin[1] + 0.5 * (f - 1) / (k * f))
    h, w = shape
    xs = (np.arange(w, dtype=np.float32) / k + origin[0])[None, :]
    ys = (np.arange(h, dtype=np.float32) / k + origin[1])[:, None]
    if kind == "cloth":
        img = _cloth(xs, ys, shape, k, rng)
    elif kind == "wood":
        img = _wood(xs, ys, shape, k, rng)
    elif kind == "paper":
        base = np.array(rng.uniform(150, 230, 3), np.float32)
        img = np.broadcast_to(base, (h, w, 3)) * (1 + 0.03 * _noise(shape, 30 * k, rng))[..., None]
    elif kind == "concrete":
        img = _concrete(shape, k, rng)
    else:  # "hand": the card lies on the artisan's palm, over a cloth or a floor
        img = (
            0.8 * _cloth(xs, ys, shape, k, rng) if rng.random() < 0.5 else _concrete(shape, k, rng)
        )
        skin = np.array(_SKIN[int(rng.integers(len(_SKIN)))], np.float32)
        cx = rng.choice([-30.0, 330.0]) + rng.normal(0, 15)
        cy = 105 + rng.normal(0, 25)
        r = np.hypot((xs - cx) / rng.uniform(110, 150), (ys - cy) / rng.uniform(80, 110))
        palm = np.clip((1.0 - r) * 6, 0, 1)[..., None]
        lit = (1 + 0.08 * _noise(shape, 30 * k, rng))[..., None] * (0.8 + 0.2 * palm)
        img = img * (1 - palm) + skin * lit * palm
    if card_mm is not None:
        # The card sits a fraction of a millimetre above the table: a faint contact shadow.
        dx = np.maximum(np.maximum(-xs, xs - card_mm[0]), 0)
        dy = np.maximum(np.maximum(-ys, ys - card_mm[1]), 0)
        img = img * (1 - 0.3 * np.exp(-np.hypot(dx, dy) / 1.5))[..., None]
    small = np.clip(img, 0, 255).astype(np.uint8)
    out = cv2.resize(small, (full[1], full[0]), interpolation=cv2.INTER_LINEAR)
    if kind == "cloth" and k * f >= 2.0:
        # The weave, a cheap separable pattern: one sine per row times one per column.
        period = rng.uniform(1.0, 1.6) * k * f
        wx = np.sin(np.arange(full[1], dtype=np.float32) * (2 * np.pi / period))
        wy = np.sin(np.arange(full[0], dtype=np.float32) * (2 * np.pi / period))
        weave = (1 + 0.06 * np.outer(wy, wx)).astype(np.float32)
        out = cv2.multiply(out, cv2.merge([weave, weave, weave]), dtype=cv2.CV_8U)
    return out


def draw_fingers(
    img: NDArray[np.uint8],
    k: float,
    origin: tuple[float, float],
    card_mm: tuple[float, float],
    rng: np.random.Generator,
) -> None:
    """Fingers holding the card at one short edge (they may cover a marker: a real nuisance)."""
    skin = np.array(_SKIN[int(rng.integers(len(_SKIN)))], np.float64)
    side = -1 if rng.random() < 0.5 else 1
    x_edge = 0.0 if side < 0 else card_mm[0]
    y = rng.uniform(0.3, 0.7) * card_mm[1]
    width = max(3, int(17 * k))
    for i in range(int(rng.integers(1, 4))):
        yy = y + (i - 1) * 19
        # From the hand outside the card (side -1: left of it) to a fingertip over its edge.
        a = np.array([(x_edge + side * 70 - origin[0]) * k, (yy - origin[1]) * k])
        tip = x_edge - side * rng.uniform(4, 15)
        b = np.array([(tip - origin[0]) * k, (yy + rng.uniform(-3, 3) - origin[1]) * k])
        tone = skin * rng.uniform(0.9, 1.1)
        pa, pb = (int(a[0]), int(a[1])), (int(b[0]), int(b[1]))
        # A finger is a cylinder: darker at its sides, lighter along the top.
        for frac, bright in ((1.0, 0.7), (0.8, 0.85), (0.55, 1.0), (0.25, 1.12)):
            col = tuple(float(c) for c in np.clip(tone * bright, 0, 255))
            cv2.line(img, pa, pb, col, max(1, int(width * frac)), cv2.LINE_AA)
        # The nail: a paler rounded patch at the fingertip.
        d = (b - a) / max(np.linalg.norm(b - a), 1e-6)
        nail = b - d * width * 0.45
        axes = (max(1, int(width * 0.35)), max(1, int(width * 0.28)))
        ang = float(np.degrees(np.arctan2(d[1], d[0])))
        nail_col = tuple(float(c) for c in np.clip(tone * 1.25 + 25, 0, 255))
        cv2.ellipse(img, (int(nail[0]), int(nail[1])), axes, ang, 0, 360, nail_col, -1, cv2.LINE_AA)


def draw_clutter(
    img: NDArray[np.uint8],
    k: float,
    origin: tuple[float, float],
    spots_mm: list[tuple[float, float]],
    rng: np.random.Generator,
) -> int:
    """Coins, a pen, a thread spool at the given plane points; returns how many were drawn."""
    n = 0
    for cx, cy in spots_mm:
        p = (int((cx - origin[0]) * k), int((cy - origin[1]) * k))
        if not (0 <= p[0] < img.shape[1] and 0 <= p[1] < img.shape[0]):
            continue
        kind = rng.choice(["coin", "pen", "spool", "cap"])
        if kind == "coin":  # a shiny disc the size of a stud: a hard negative for the detector
            r = int(rng.uniform(10, 14) * k)
            col = (60, 140, 170) if rng.random() < 0.5 else (170, 170, 165)
            cv2.circle(img, p, r, col, -1, cv2.LINE_AA)
            cv2.circle(img, p, max(1, int(r * 0.8)), tuple(c * 1.15 for c in col), max(1, r // 8))
        elif kind == "pen":
            ang = rng.uniform(0, np.pi)
            d = np.array([np.cos(ang), np.sin(ang)]) * 70 * k
            col = tuple(int(c) for c in rng.integers(0, 200, 3))
            a = (int(p[0] - d[0]), int(p[1] - d[1]))
            b = (int(p[0] + d[0]), int(p[1] + d[1]))
            cv2.line(img, a, b, col, max(2, int(9 * k)), cv2.LINE_AA)
        elif kind == "spool":
            r = int(rng.uniform(14, 20) * k)
            col = tuple(int(c) for c in rng.integers(30, 230, 3))
            cv2.circle(img, p, r, col, -1, cv2.LINE_AA)
            cv2.circle(img, p, max(1, r // 3), (200, 210, 220), -1, cv2.LINE_AA)
        else:
            r = int(rng.uniform(12, 16) * k)
            col = tuple(int(c) for c in rng.integers(0, 255, 3))
            cv2.circle(img, p, r, col, -1, cv2.LINE_AA)
            cv2.circle(img, p, r, (30, 30, 30), max(1, int(0.8 * k)), cv2.LINE_AA)
        n += 1
    return n
