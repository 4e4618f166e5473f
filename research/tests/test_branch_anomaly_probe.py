"""research.branch_anomaly_probe: the branch graph's feature outputs and the fused chooser."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qc_model.package_graphs import open_session
from research.branch_anomaly_probe import LAYERS, feature_session, fused_choice

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "models" / "default"


def test_feature_outputs_leave_the_branch_logits_unchanged() -> None:
    if not (PACKAGE / "surface.onnx").is_file():
        pytest.fail("models/default has no surface.onnx: the probe reads the bundled branch")
    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, 96, 96)).astype(np.float32)
    plain = open_session(PACKAGE / "surface.onnx", threads=1).run(["cell_logits"], {"crop": x})[0]
    outs = feature_session(PACKAGE).run(["cell_logits", *LAYERS.values()], {"crop": x})
    np.testing.assert_array_equal(outs[0], plain)
    concat, hidden = outs[1], outs[2]
    assert concat.shape == (2, 152, 12, 12)  # 40 stride-8 + 112 stride-16 channels per cell
    assert hidden.shape == (2, 96, 12, 12)
    assert hidden.min() >= 0.0 and hidden.max() <= 6.0  # after the head's ReLU6


def test_fused_choice_meets_the_recall_and_an_informative_anomaly_earns_a_weight() -> None:
    rng = np.random.default_rng(2)
    bad = rng.random(600) < 0.3
    m = rng.normal(0, 1, 600) + 1.0 * bad  # a weak classifier
    a = rng.normal(0, 1, 600) + 2.5 * bad  # an anomaly score that sees the defects
    w0, t0, f0 = fused_choice(m, a, bad, 0.9, (0.0,))
    assert w0 == 0.0 and (m >= t0)[bad].mean() >= 0.9
    w, t, f = fused_choice(m, a, bad, 0.9)
    assert w > 0 and (m + w * a >= t)[bad].mean() >= 0.9
    assert f < f0 and f == pytest.approx((m + w * a >= t)[~bad].mean())
