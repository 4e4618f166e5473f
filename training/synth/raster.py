"""Height-field canvas: jewelry primitives drawn in millimetres, then shaded like a phone photo."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

F32 = NDArray[np.float32]


@dataclass(frozen=True)
class Material:
    """How a surface reflects light; albedo is linear RGB in 0..1."""

    albedo: tuple[float, float, float]
    metal: bool = False
    spec: float = 0.3
    shininess: float = 30.0
    translucent: float = 0.0  # glass: light passes through and glows on the far side


def srgb_to_linear(c: NDArray[np.floating]) -> F32:
    c = np.asarray(c, np.float32)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(c: NDArray[np.floating]) -> F32:
    c = np.clip(np.asarray(c, np.float32), 0.0, 1.0)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * np.power(c, 1 / 2.4) - 0.055).astype(
        np.float32
    )


class Canvas:
    """A local, axis-aligned raster of one piece: height (mm), albedo, material, component id."""

    def __init__(self, origin_mm: tuple[float, float], size_px: tuple[int, int], k: float) -> None:
        self.x0, self.y0 = origin_mm
        self.k = float(k)  # px per mm
        self.w, self.h_px = size_px
        shape = (self.h_px, self.w)
        self.height = np.full(shape, -1.0, np.float32)
        self.albedo = np.zeros((*shape, 3), np.float32)
        self.mat = np.zeros(shape, np.uint8)
        self.comp = np.full(shape, -1, np.int16)
        self.cover = np.zeros(shape, np.float32)
        self.materials: list[Material] = []

    # -- coordinates -----------------------------------------------------------------------
    def to_px(self, pts_mm: NDArray[np.floating]) -> NDArray[np.float64]:
        p = np.asarray(pts_mm, np.float64).reshape(-1, 2)
        return (p - (self.x0, self.y0)) * self.k - 0.5

    def _window(
        self, pts_mm: NDArray[np.floating], pad_mm: float
    ) -> tuple[int, int, int, int] | None:
        p = self.to_px(pts_mm)
        pad = pad_mm * self.k + 2
        xa = max(0, int(np.floor(p[:, 0].min() - pad)))
        ya = max(0, int(np.floor(p[:, 1].min() - pad)))
        xb = min(self.w, int(np.ceil(p[:, 0].max() + pad)) + 1)
        yb = min(self.h_px, int(np.ceil(p[:, 1].max() + pad)) + 1)
        if xb <= xa or yb <= ya:
            return None
        return xa, ya, xb, yb

    def grid_mm(self, win: tuple[int, int, int, int]) -> tuple[F32, F32]:
        xa, ya, xb, yb = win
        xs = (np.arange(xa, xb, dtype=np.float32) + 0.5) / self.k + self.x0
        ys = (np.arange(ya, yb, dtype=np.float32) + 0.5) / self.k + self.y0
        return xs[None, :], ys[:, None]

    def add_material(self, m: Material) -> int:
        self.materials.append(m)
        return len(self.materials) - 1

    # -- compositing -----------------------------------------------------------------------
    def _merge(
        self,
        win: tuple[int, int, int, int],
        h: F32,
        alpha: F32,
        mat: int,
        comp: int,
        albedo: F32 | tuple[float, float, float] | None = None,
    ) -> None:
        xa, ya, xb, yb = win
        sl = np.s_[ya:yb, xa:xb]
        # Nearer surfaces win: a bead lies on its cord, a link crosses the next one.
        win_mask = (alpha > 0) & (h >= self.height[sl])
        self.height[sl][win_mask] = h[win_mask]
        self.mat[sl][win_mask] = mat
        self.comp[sl][win_mask] = comp
        col = self.materials[mat].albedo if albedo is None else albedo
        if isinstance(col, np.ndarray) and col.ndim == 3:
            self.albedo[sl][win_mask] = col[win_mask]
        else:
            self.albedo[sl][win_mask] = np.asarray(col, np.float32)
        np.maximum(self.cover[sl], alpha, out=self.cover[sl])

    # -- primitives --------------------------------------------------------------------------
    def wire(
        self,
        pts_mm: NDArray[np.floating],
        radius: float,
        mat: int,
        closed: bool = False,
        comp: int = -1,
        z0: float = 0.0,
        flat: float = 1.0,
    ) -> None:
        """A round wire along a polyline; `flat` < 1 flattens its profile (sheet edge, cord)."""
        win = self._window(pts_mm, radius)
        if win is None:
            return
        xa, ya, xb, yb = win
        line = np.full((yb - ya, xb - xa), 255, np.uint8)
        p = np.round((self.to_px(pts_mm) - (xa, ya)) * 16).astype(np.int32)
        cv2.polylines(line, [p.reshape(-1, 1, 2)], closed, 0, 1, cv2.LINE_8, shift=4)
        d = cv2.distanceTransform(line, cv2.DIST_L2, cv2.DIST_MASK_PRECISE) / self.k
        alpha = np.clip((radius - d) * self.k + 0.5, 0.0, 1.0)
        h = z0 + flat * np.sqrt(np.maximum(radius * radius - d * d, 0.0))
        self._merge(win, h.astype(np.float32), alpha.astype(np.float32), mat, comp)

    def sphere(
        self,
        c: tuple[float, float],
        radius: float,
        mat: int,
        comp: int = -1,
        z0: float = 0.0,
        squash: float = 1.0,
        albedo: F32 | tuple[float, float, float] | None = None,
    ) -> None:
        """A bead (squash < 1 for a flat cabochon dome)."""
        win = self._window(np.array([c]), radius)
        if win is None:
            return
        xs, ys = self.grid_mm(win)
        d = np.sqrt((xs - c[0]) ** 2 + (ys - c[1]) ** 2)
        alpha = np.clip((radius - d) * self.k + 0.5, 0.0, 1.0)
        h = z0 + squash * np.sqrt(np.maximum(radius * radius - d * d, 0.0))
        self._merge(win, h.astype(np.float32), alpha.astype(np.float32), mat, comp, albedo)

    def sheet(
        self,
        poly_mm: NDArray[np.floating],
        thickness: float,
        mat: int,
        holes: tuple[NDArray[np.floating], ...] = (),
        bevel: float = 0.8,
        comp: int = -1,
        z0: float = 0.0,
    ) -> None:
        """A flat plate cut along a polygon, with rounded (bevelled) edges."""
        win = self._window(poly_mm, 0.0)
        if win is None:
            return
        xa, ya, xb, yb = win
        ss = 4  # polygon edges supersampled so the plate's outline is smooth
        big = np.zeros(((yb - ya) * ss, (xb - xa) * ss), np.uint8)
        off = (xa, ya)

        def to_big(poly: NDArray[np.floating]) -> NDArray[np.int32]:
            q = ((self.to_px(poly) - off + 0.5) * ss - 0.5) * 16
            return np.round(q).astype(np.int32).reshape(-1, 1, 2)

        cv2.fillPoly(big, [to_big(poly_mm)], 255, cv2.LINE_8, shift=4)
        for hole in holes:
            cv2.fillPoly(big, [to_big(hole)], 0, cv2.LINE_8, shift=4)
        alpha = cv2.resize(big, (xb - xa, yb - ya), interpolation=cv2.INTER_AREA)
        alpha = alpha.astype(np.float32) / 255.0
        d = cv2.distanceTransform((alpha > 0.5).astype(np.uint8), cv2.DIST_L2, 5) / self.k
        t = np.clip(d / max(bevel, 1e-3), 0.0, 1.0)
        h = z0 + thickness * np.sqrt(1.0 - (1.0 - t) ** 2)
        self._merge(win, h.astype(np.float32), alpha, mat, comp)

    def add_bump(self, bump: F32, where: NDArray[np.bool_]) -> None:
        """Surface texture (hammer marks, brushing, grain) as a small height offset in mm."""
        self.height[where] += bump[where]
