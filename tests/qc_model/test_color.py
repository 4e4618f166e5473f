"""Tests of the colour science: CIEDE2000 against Sharma, Wu & Dalal (2005), sRGB <-> Lab."""

from __future__ import annotations

import numpy as np
import pytest

from qc_model.color import bgr_to_lab, delta_e_2000, lab_to_rgb, rgb_to_lab

# (Lab 1, Lab 2, ΔE00) from the paper's test data set (Table 1); pairs chosen to cover the
# hue-angle wrap-around, a* sign flips, near-neutral colours and the blue-region rotation term.
SHARMA = [
    ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
    ((50.0, -1.3802, -84.2814), (50.0, 0.0, -82.7485), 1.0000),
    ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
    ((50.0, 2.49, -0.001), (50.0, -2.49, 0.0009), 7.1792),
    ((50.0, 2.49, -0.001), (50.0, -2.49, 0.0011), 7.2195),
    ((50.0, -0.001, 2.49), (50.0, 0.0009, -2.49), 4.8045),
    ((50.0, -0.001, 2.49), (50.0, 0.0011, -2.49), 4.7461),
    ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
    ((50.0, 2.5, 0.0), (56.0, -27.0, -3.0), 31.9030),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ((22.7233, 20.0904, -46.694), (23.0331, 14.973, -42.5619), 2.0373),
    ((90.9257, -0.5406, -0.9208), (88.6381, -0.8985, -0.7239), 1.5381),
    ((2.0776, 0.0795, -1.135), (0.9033, -0.0636, -0.5514), 0.9082),
]


@pytest.mark.parametrize(("lab1", "lab2", "expected"), SHARMA)
def test_ciede2000_matches_published_pairs(lab1, lab2, expected) -> None:
    assert float(delta_e_2000(lab1, lab2)) == pytest.approx(expected, abs=1e-4)
    # Symmetric, as the formula is.
    assert float(delta_e_2000(lab2, lab1)) == pytest.approx(expected, abs=1e-4)


def test_ciede2000_broadcasts_and_is_zero_on_identity() -> None:
    lab1 = np.array([p[0] for p in SHARMA])
    lab2 = np.array([p[1] for p in SHARMA])
    np.testing.assert_allclose(delta_e_2000(lab1, lab2), [p[2] for p in SHARMA], atol=1e-4)
    np.testing.assert_allclose(delta_e_2000(lab1, lab1), 0.0, atol=1e-12)


def test_known_srgb_values() -> None:
    np.testing.assert_allclose(rgb_to_lab([255, 255, 255]), [100.0, 0.0, 0.0], atol=0.01)
    np.testing.assert_allclose(rgb_to_lab([0, 0, 0]), [0.0, 0.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(rgb_to_lab([255, 0, 0]), [53.24, 80.09, 67.20], atol=0.02)
    # OpenCV channel order: blue first.
    np.testing.assert_allclose(bgr_to_lab([0, 0, 255]), rgb_to_lab([255, 0, 0]))


def test_lab_rgb_round_trip() -> None:
    rgb = np.random.default_rng(0).uniform(0, 255, (500, 3))
    np.testing.assert_allclose(lab_to_rgb(rgb_to_lab(rgb)), rgb, atol=1e-6)
    # Image-shaped input keeps its shape.
    img = rgb.reshape(10, 50, 3)
    assert rgb_to_lab(img).shape == (10, 50, 3)
    # Out-of-gamut Lab is clipped into 0..255, not returned as nonsense.
    out = lab_to_rgb([50.0, 120.0, -120.0])
    assert out.min() >= 0.0 and out.max() <= 255.0
