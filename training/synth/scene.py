"""One synthetic photo: table, mat, pieces and their shadows, seen through a phone camera."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from numpy.typing import NDArray

from qc_model.mat import DEFAULT_MAT
from training.synth.backgrounds import draw_clutter, draw_fingers, plane_texture
from training.synth.camera import H3, local_scale, project, visible_window
from training.synth.capture import Conditions
from training.synth.matwindow import render_mat_window
from training.synth.optics import gaussian_blur
from training.synth.placement import Placement
from training.synth.render import PieceLayer, render_piece
from training.synth.sampling import Item

U8 = NDArray[np.uint8]
_LIMIT = (-350.0, -350.0, DEFAULT_MAT.width_mm + 350, DEFAULT_MAT.height_mm + 350)


@dataclass
class Frame:
    """A rendered frame before capture effects: pixels, per-piece masks, geometry."""

    image: U8
    piece_masks: list[NDArray[np.bool_]]
    defect_masks: dict[str, NDArray[np.bool_]]
    layers: list[PieceLayer]
    mat_to_image: H3
    markers_in_frame: list[int]
    mat_visible: bool
    in_frame_fraction: float
    clutter: int = 0
    occluded_markers: list[int] = field(default_factory=list)


def _canvas_transform(x0: int, y0: int, k: float) -> H3:
    """mm -> canvas pixel coordinates (pixel centres at integers, as OpenCV has them)."""
    return np.array([[k, 0, -x0 - 0.5], [0, k, -y0 - 0.5], [0, 0, 1]], np.float64)


def _layer_to_mm(layer: PieceLayer) -> H3:
    k = layer.px_per_mm
    ox, oy = layer.origin_mm
    return np.array([[1 / k, 0, ox + 0.5 / k], [0, 1 / k, oy + 0.5 / k], [0, 0, 1]], np.float64)


def _roi(hom: H3, w: int, h: int, frame: tuple[int, int]) -> tuple[int, int, int, int] | None:
    q = project(hom, np.array([[-0.5, -0.5], [w, -0.5], [w, h], [-0.5, h]]))
    xa, ya = np.floor(q.min(0)).astype(int) - 2
    xb, yb = np.ceil(q.max(0)).astype(int) + 2
    xa, ya = max(xa, 0), max(ya, 0)
    xb, yb = min(xb, frame[0]), min(yb, frame[1])
    if xb <= xa or yb <= ya:
        return None
    return int(xa), int(ya), int(xb), int(yb)


def _shift(hom: H3, dx: float, dy: float) -> H3:
    return np.array([[1, 0, -dx], [0, 1, -dy], [0, 0, 1]], np.float64) @ hom


def _clutter_spots(
    window: tuple[float, float, float, float],
    placements: list[Placement],
    mat: bool,
    rng: np.random.Generator,
) -> list[tuple[float, float]]:
    """1-3 visible places for everyday objects: off the card if there is room, else on its
    blank border, never on the piece."""
    x0, y0, x1, y1 = window
    mw, mh = DEFAULT_MAT.width_mm, DEFAULT_MAT.height_mm
    centres = np.array([p.centre for p in placements])
    spots: list[tuple[float, float]] = []
    want = int(rng.integers(1, 4))
    for _ in range(60):
        if len(spots) == want:
            break
        x = rng.uniform(x0 + 15, max(x0 + 16, x1 - 15))
        y = rng.uniform(y0 + 15, max(y0 + 16, y1 - 15))
        off_card = not mat or x < -12 or y < -12 or x > mw + 12 or y > mh + 12
        if np.min(np.hypot(centres[:, 0] - x, centres[:, 1] - y)) < 45:
            continue
        if off_card or rng.random() < 0.05:
            spots.append((float(x), float(y)))
    return spots


def _plane(
    item: Item,
    placements: list[Placement],
    layers: list[PieceLayer],
    hom: H3,
    frame: tuple[int, int],
    cond: Conditions,
    rng: np.random.Generator,
    mat: bool,
) -> tuple[U8, H3, int, list[int]]:
    """The table plane around the mat, with the card, clutter and the pieces' shadows."""
    w, h = frame
    wx0, wy0, wx1, wy1 = visible_window(hom, frame, _LIMIT)
    centre = np.mean([p.centre for p in placements], axis=0)
    k = local_scale(hom, (float(centre[0]), float(centre[1])))
    k = min(k, np.sqrt(1.4 * w * h / max((wx1 - wx0) * (wy1 - wy0), 1.0)))
    x0, y0 = int(np.floor(wx0 * k)), int(np.floor(wy0 * k))
    cw, ch = int(np.ceil(wx1 * k)) - x0 + 1, int(np.ceil(wy1 * k)) - y0 + 1
    origin = ((x0 + 0.5) / k, (y0 + 0.5) / k)
    card_mm = (DEFAULT_MAT.width_mm, DEFAULT_MAT.height_mm) if mat else None
    img = plane_texture(cond.background, (ch, cw), k, origin, rng, card_mm)
    occluded: list[int] = []
    if mat:
        card_img, card = render_mat_window(DEFAULT_MAT, k, x0, y0, cw, ch)
        rows, cols = np.flatnonzero(card.any(1)), np.flatnonzero(card.any(0))
        if len(rows) and len(cols):  # the card is an axis-aligned rectangle of the plane
            sl = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
            img[sl] = card_img[sl]
        if cond.background == "hand" and rng.random() < 0.6:
            before = img.copy()
            draw_fingers(img, k, origin, (DEFAULT_MAT.width_mm, DEFAULT_MAT.height_mm), rng)
            changed = np.any(img != before, axis=2)
            for mid in range(8):
                c = DEFAULT_MAT.marker_corners_mm(mid)
                q = ((c - origin) * k).astype(int)
                xa, ya = np.clip(q.min(0), 0, None)
                xb, yb = q.max(0) + 1
                if changed[ya:yb, xa:xb].any():
                    occluded.append(mid)
    clutter = 0
    if "clutter" in cond.applied:
        spots = _clutter_spots((wx0, wy0, wx1, wy1), placements, mat, rng)
        clutter = draw_clutter(img, k, origin, spots, rng)
    to_canvas = _canvas_transform(x0, y0, k)
    lz = max(cond.light[2], 0.3)
    for spec, pl, layer in zip(item.pieces, placements, layers, strict=True):
        # How far above the card the piece's shadow-casting edge sits (a collar's
        # thickness_mm is its band width, not its height).
        collar = spec.design.piece_type == "beaded_collar"
        lift = 1.5 if collar else 0.5 * spec.design.thickness_mm
        sx, sy = -cond.light[0] / lz * lift, -cond.light[1] / lz * lift
        m = _shift(to_canvas, -sx * k, -sy * k) @ pl.matrix() @ _layer_to_mm(layer)
        roi = _roi(m, layer.alpha.shape[1], layer.alpha.shape[0], (cw, ch))
        if roi is None:
            continue
        xa, ya, xb, yb = roi
        pad = int(3 * k) + 2
        xa, ya, xb, yb = max(0, xa - pad), max(0, ya - pad), min(cw, xb + pad), min(ch, yb + pad)
        a = cv2.warpAffine(layer.rgba[..., 3].copy(), _shift(m, xa, ya)[:2], (xb - xa, yb - ya))
        a = gaussian_blur(a, max(0.7, (0.5 + 0.3 * lift) * k))
        sub = img[ya:yb, xa:xb].astype(np.float32) * (1 - 0.45 * a[..., None])
        img[ya:yb, xa:xb] = sub.astype(np.uint8)
    return img, to_canvas, clutter, occluded


def compose(
    item: Item,
    placements: list[Placement],
    hom: H3,
    frame: tuple[int, int],
    cond: Conditions,
    rng: np.random.Generator,
    mat: bool = True,
) -> Frame:
    """Render the frame (no sensor effects yet) and every mask in image coordinates."""
    w, h = frame
    layers = []
    for spec, pl in zip(item.pieces, placements, strict=True):
        k = local_scale(hom, pl.centre) * 1.15
        light = np.asarray(cond.light)
        c, s = np.cos(-pl.angle), np.sin(-pl.angle)
        local = (c * light[0] - s * light[1], s * light[0] + c * light[1], light[2])
        layers.append(render_piece(spec, k, local, min_mask_mm=1.2 / k))
    plane, to_canvas, clutter, occluded = _plane(
        item, placements, layers, hom, frame, cond, rng, mat
    )
    image = cv2.warpPerspective(
        plane,
        hom @ np.linalg.inv(to_canvas),
        (w, h),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REFLECT,
    )
    piece_masks: list[NDArray[np.bool_]] = []
    defect_masks: dict[str, NDArray[np.bool_]] = {}
    total, inside = 0.0, 0.0
    for pl, layer in zip(placements, layers, strict=True):
        m = hom @ pl.matrix() @ _layer_to_mm(layer)
        lh, lw = layer.alpha.shape
        full = np.zeros((h, w), np.bool_)
        roi = _roi(m, lw, lh, frame)
        ys, xs = np.nonzero(layer.alpha > 0.5)
        pts = project(m, np.stack([xs, ys], 1)[:: max(1, len(xs) // 3000)]) if len(xs) else None
        if pts is not None:
            total += len(pts)
            inside += np.sum(
                (pts[:, 0] >= 0) & (pts[:, 1] >= 0) & (pts[:, 0] < w) & (pts[:, 1] < h)
            )
        if roi is not None:
            xa, ya, xb, yb = roi
            mm = _shift(m, xa, ya)
            size = (xb - xa, yb - ya)
            # Colour and coverage travel together: one warp instead of two.
            rgba = cv2.warpPerspective(layer.rgba, mm, size, flags=cv2.INTER_LINEAR)
            a = rgba[..., 3]
            sub = image[ya:yb, xa:xb].astype(np.float32)
            image[ya:yb, xa:xb] = np.clip(sub * (1 - a[..., None]) + rgba[..., :3], 0, 255).astype(
                np.uint8
            )
            full[ya:yb, xa:xb] = a > 0.5
            labels = sorted(layer.masks)
            for i in range(0, len(labels), 4):  # up to 4 masks per warp, one per channel
                group = labels[i : i + 4]
                stack = np.dstack([layer.masks[lb].astype(np.uint8) * 255 for lb in group])
                wm = cv2.warpPerspective(stack, mm, size, flags=cv2.INTER_LINEAR)
                wm = wm.reshape(size[1], size[0], len(group))
                for j, label in enumerate(group):
                    tgt = defect_masks.setdefault(label, np.zeros((h, w), np.bool_))
                    tgt[ya:yb, xa:xb] |= wm[..., j] > 40
        piece_masks.append(full)
    markers = []
    if mat:
        for mid in range(8):
            q = project(hom, DEFAULT_MAT.marker_corners_mm(mid))
            if q.min() >= 0 and q[:, 0].max() <= w - 1 and q[:, 1].max() <= h - 1:
                markers.append(mid)
    mat_corners = project(hom, np.array([[0, 0], [DEFAULT_MAT.width_mm, DEFAULT_MAT.height_mm]]))
    mat_visible = mat and bool(
        ((mat_corners[:, 0].max() > 0) and (mat_corners[:, 0].min() < w))
        and ((mat_corners[:, 1].max() > 0) and (mat_corners[:, 1].min() < h))
    )
    return Frame(
        image,
        piece_masks,
        defect_masks,
        layers,
        hom,
        markers,
        mat_visible,
        inside / total if total else 0.0,
        clutter,
        occluded,
    )
