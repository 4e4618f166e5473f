"""qc_model.surface's crop at the branch's scale, its windows, and pool_max."""

from __future__ import annotations

import numpy as np
import pytest

from qc_model.inference import pool_max
from qc_model.surface import SurfaceConfig, surface_crop, surface_scale, window


def test_window_pads_with_zeros_past_the_edge() -> None:
    a = np.arange(16, dtype=np.uint8).reshape(4, 4)
    assert window(a, -1, 2, 3).tolist() == [[0, 0, 0], [2, 3, 0], [6, 7, 0]]


def test_surface_scale_resamples_only_what_differs_and_caps_the_side() -> None:
    cfg = SurfaceConfig(px_per_mm=2.65, max_side=512)
    assert surface_scale(cfg, 2.8, 300) == 1.0  # within 15 %: left alone
    assert surface_scale(cfg, 5.3, 300) == pytest.approx(0.5)  # a finer phone photo
    assert surface_scale(cfg, None, 300) == 1.0  # no mat: as photographed
    assert surface_scale(cfg, 2.65, 1024) == pytest.approx(0.5)  # too big: capped
    assert surface_scale(SurfaceConfig(), 5.3, 300) == 1.0  # no trained scale


def test_surface_crop_is_rgb_padded_to_the_stride() -> None:
    img = np.zeros((100, 100, 3), np.uint8)
    img[:, :, 0] = 200  # blue in BGR
    rgb, f = surface_crop(img, (10, 10, 51, 51), SurfaceConfig(), None)
    assert f == 1.0 and rgb.shape == (48, 48, 3)
    assert rgb[0, 0].tolist() == [0, 0, 200] and rgb[47, 47].tolist() == [0, 0, 0]


def test_pool_max_keeps_the_peak() -> None:
    g = np.zeros((70, 40), np.float32)
    g[69, 39] = 1.0
    p = pool_max(g, 32)
    assert p.shape == (24, 20) and p.max() == 1.0 and p[23, 19] == 1.0
    assert pool_max(g[:8, :8], 32).shape == (8, 8)
