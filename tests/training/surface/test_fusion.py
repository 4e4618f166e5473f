"""training.surface.fusion: the fitted combination and the design offsets."""

from __future__ import annotations

import numpy as np
import pytest

from training.metrics import average_precision
from training.surface.fusion import (
    apply_fusion,
    choose_fusion,
    design_offsets,
    fit_fusion,
    fused_probs,
)


def test_fit_fusion_learns_which_score_carries_the_evidence() -> None:
    rng = np.random.default_rng(0)
    y = rng.random(4000) < 0.3
    p_model = np.full(4000, 0.3)  # knows only the base rate
    z = np.where(y, 2.0, -2.0) + rng.normal(0, 1.0, 4000)
    f = fit_fusion(p_model, z, y)
    assert f.w_surface > 1.0
    fused = apply_fusion(p_model, z, f)
    assert fused[y].mean() > 0.7 and fused[~y].mean() < 0.2
    fusion, report = choose_fusion(p_model[:, None], z[:, None], y[:, None], ["x"], ["x"])
    assert set(fusion) == {"x"} and report["x"]["val_ap_fused"] > report["x"]["val_ap_package"]
    # A branch that knows nothing is not fused in, unless asked for.
    noise = rng.normal(0, 1, 4000)[:, None]
    perfect = np.where(y, 0.9, 0.1)[:, None]
    assert choose_fusion(perfect, noise, y[:, None], ["x"], ["x"])[0] == {}
    assert set(choose_fusion(perfect, noise, y[:, None], ["x"], ["x"], force=["x"])[0]) == {"x"}


def test_design_offsets_take_out_what_a_design_adds_to_the_branch_logit() -> None:
    rng = np.random.default_rng(2)
    n = 3000
    designs = rng.choice(["KQ-CHAIN-1", "KQ-STUD-1", "KQ-RING-1"], n)
    y = rng.random(n) < 0.2
    # The branch scores every chain link higher, defect or not: on chains it holds good photos.
    z = np.where(y, 1.5, -1.5) + rng.normal(0, 1.0, n) + 3.0 * (designs == "KQ-CHAIN-1")
    p_model = np.full(n, 0.2)
    offsets = design_offsets(z, ~y, list(designs), shrink=0.0)
    overall = z[~y].mean()
    for d in ("KQ-CHAIN-1", "KQ-STUD-1"):
        assert offsets[d] == pytest.approx(z[~y & (designs == d)].mean() - overall, abs=1e-6)
    assert offsets["KQ-CHAIN-1"] > 1.5 > 0 > offsets["KQ-STUD-1"]
    # Shrinking toward 0: as if `shrink` photos at the overall mean were added.
    m = ~y & (designs == "KQ-RING-1")
    shrunk = design_offsets(z, ~y, list(designs), shrink=float(m.sum()))
    assert shrunk["KQ-RING-1"] == pytest.approx(offsets["KQ-RING-1"] / 2, abs=1e-6)
    assert design_offsets(z, np.zeros(n, bool), list(designs)) == {}

    fusion, report = choose_fusion(
        p_model[:, None], z[:, None], y[:, None], ["x"], ["x"], designs=list(designs)
    )
    f = fusion["x"]
    assert set(f.design_offsets) == {"KQ-CHAIN-1", "KQ-STUD-1", "KQ-RING-1"}
    r = report["x"]
    assert r["val_ap_fused"] == r["val_ap_fused_design_offsets"] > r["val_ap_package"]
    with_d = fused_probs(p_model[:, None], z[:, None], ["x"], ["x"], fusion, list(designs))
    assert average_precision(with_d[:, 0], y) == pytest.approx(r["val_ap_fused"])
    # Without designs, no offsets are fitted (and none are applied).
    plain, plain_report = choose_fusion(p_model[:, None], z[:, None], y[:, None], ["x"], ["x"])
    assert plain["x"].design_offsets == {}
    assert "val_ap_fused_design_offsets" not in plain_report["x"]
    assert r["val_ap_fused_design_offsets"] > plain_report["x"]["val_ap_fused"] + 0.05
    # A design that adds nothing keeps the fusion without offsets.
    flat = np.where(y, 1.5, -1.5) + rng.normal(0, 1.0, n)
    kept, _ = choose_fusion(p_model[:, None], flat[:, None], y[:, None], ["x"], ["x"],
                            designs=list(designs))  # fmt: skip
    assert kept["x"].design_offsets == {}
