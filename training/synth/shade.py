"""Shading of a height-field canvas: diffuse light, specular highlights, metal reflections."""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from training.synth.raster import F32, Canvas, linear_to_srgb


def normals(height: F32, px_per_mm: float) -> F32:
    """Unit surface normals (H, W, 3) from a height field in mm."""
    gx = cv2.Sobel(height, cv2.CV_32F, 1, 0, ksize=3) * (px_per_mm / 8.0)
    gy = cv2.Sobel(height, cv2.CV_32F, 0, 1, ksize=3) * (px_per_mm / 8.0)
    # Steps between touching surfaces (bead on cord) would give spikes; clamp the slope.
    np.clip(gx, -6, 6, out=gx)
    np.clip(gy, -6, 6, out=gy)
    inv = 1.0 / np.sqrt(gx * gx + gy * gy + 1.0)
    return np.stack([-gx * inv, -gy * inv, inv], axis=-1)


def shade(canvas: Canvas, light: NDArray[np.floating]) -> tuple[tuple[NDArray[np.intp], ...], F32]:
    """Linear RGB radiance (N, 3) of the covered pixels `sel`; a surface facing straight up
    shows its albedo exactly.

    `light` is the key light direction (x, y, z) in the canvas frame, z towards the camera.
    Only covered pixels are shaded: a necklace covers a fifth of its bounding box.
    """
    lv = np.asarray(light, np.float32)
    lv = lv / np.linalg.norm(lv)
    h = np.where(canvas.cover > 0, canvas.height, 0.0).astype(np.float32)
    n = normals(h, canvas.k)
    sel = np.nonzero(canvas.cover > 0)
    n = n[sel]  # (N, 3)
    nx, ny, nz = n[:, 0], n[:, 1], n[:, 2]
    ndl = np.clip(n @ lv, 0.0, None)
    # Half vector for a camera straight above.
    hv = lv + np.array([0, 0, 1], np.float32)
    hv /= np.linalg.norm(hv)
    ndh = np.clip(n @ hv, 1e-6, None)
    mat = canvas.mat[sel]
    mats = canvas.materials
    spec_k = np.array([m.spec for m in mats], np.float32)[mat]
    shin = np.array([m.shininess for m in mats], np.float32)[mat]
    metal = np.array([m.metal for m in mats], np.bool_)[mat]
    glow = np.array([m.translucent for m in mats], np.float32)[mat]

    amb, kd = 0.45, 0.75
    diffuse = (amb + kd * ndl) / (amb + kd * lv[2])
    # Specular lobe, minus what a flat face already gets, so flat faces keep their albedo.
    lobe = np.exp(shin * np.log(ndh)) - np.exp(shin * np.log(hv[2]))
    lobe = np.clip(lobe, 0.0, None) * spec_k

    # Metals mirror the room: bright ceiling overhead, darker walls at grazing angles.
    # Near-vertical faces mirror the white card right next to them, so edges stay light.
    rz = np.clip(2 * nz * nz - 1, 0, 1)
    env = 0.45 + 0.55 * rz * np.sqrt(rz) + 0.5 * (1 - nz) ** 3
    rim = np.clip(1.0 - nz, 0, 1)

    alb = canvas.albedo[sel]
    base_metal = alb * (env * (0.35 + 0.65 * diffuse))[:, None]
    spec_metal = (0.55 * alb + 0.45) * (lobe * 2.2)[:, None]
    base_diel = alb * diffuse[:, None]
    if glow.any():
        # Light refracted through a glass bead gathers on the side away from the lamp.
        away = np.clip(-(nx * lv[0] + ny * lv[1]), 0, None) * (1 - nz)
        base_diel = base_diel * (1 + (1.2 * glow * away)[:, None])
    # Glossy dielectrics (glass, glaze, polished horn) show a faint white sheen at grazing angles.
    spec_diel = (lobe * 1.6 + spec_k * 0.25 * rim * rim)[:, None]
    vals = np.where(metal[:, None], base_metal + spec_metal, base_diel + spec_diel)
    return sel, vals.astype(np.float32)


_LUT_N = 4096
_SRGB_LUT = (linear_to_srgb(np.linspace(0, 1, _LUT_N, dtype=np.float32)) * 255.0).astype(np.float32)


def finish_layer(
    canvas: Canvas, sel: tuple[NDArray[np.intp], ...], radiance: F32, ss: int
) -> tuple[F32, F32]:
    """sRGB colour premultiplied by coverage (0..255) and coverage, downsampled by `ss`."""
    alpha = canvas.cover
    idx = (np.clip(radiance, 0, 1) * (_LUT_N - 1) + 0.5).astype(np.int32)
    rgb = np.zeros((canvas.h_px, canvas.w, 3), np.float32)
    rgb[sel] = _SRGB_LUT[idx] * alpha[sel][:, None]
    if ss > 1:
        size = (max(1, canvas.w // ss), max(1, canvas.h_px // ss))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        alpha = cv2.resize(alpha, size, interpolation=cv2.INTER_AREA)
    return rgb, alpha.astype(np.float32)
