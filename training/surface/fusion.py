"""Fusion: per class, the package's probability and the branch's logit combined by a fitted
logistic regression, kept only where it ranks validation photos better (AP); optionally with a
per-design offset taken off the branch's logit."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from qc_model.package import Fusion
from qc_model.surface import fuse_probability, logit
from training.metrics import average_precision

# A class is fused only if its validation AP rises by at least this much: on ~1 500 photos a
# smaller rise is within what another validation draw would change.
MIN_AP_GAIN = 0.01
# A design's offset is the mean branch logit of its val photos without the defect, less all
# designs' mean, shrunk as if this many photos at the overall mean were added: a design with
# 20 such photos gets half its measured difference (docs/MODEL.md, "Design offsets").
DESIGN_SHRINK = 20.0


def fit_fusion(
    p_model: NDArray[np.float64], z_surface: NDArray[np.float64], y: NDArray[np.bool_]
) -> Fusion:
    """Logistic regression of y on (logit p_model, z_surface), Newton steps, a little L2."""
    x = np.stack([logit(p_model), np.asarray(z_surface, np.float64), np.ones(len(y))], axis=1)
    t = np.asarray(y, np.float64)
    w = np.array([1.0, 0.0, 0.0])
    ridge = np.diag([1e-3, 1e-3, 0.0]) * len(t)
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -30, 30)))
        grad = x.T @ (p - t) + ridge @ w
        hess = (x * (p * (1 - p))[:, None]).T @ x + ridge + 1e-9 * np.eye(3)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return Fusion(w_model=float(w[0]), w_surface=float(w[1]), bias=float(w[2]))


def apply_fusion(
    p_model: NDArray[np.float64], z_surface: NDArray[np.float64], f: Fusion
) -> NDArray[np.float64]:
    return fuse_probability(p_model, z_surface, f.w_model, f.w_surface, f.bias)


def design_offsets(
    z: NDArray[np.floating],
    negative: NDArray[np.bool_],
    designs: Sequence[str | None],
    shrink: float = DESIGN_SHRINK,
) -> dict[str, float]:
    """Per design, how much higher the branch scores its photos without the defect than all
    designs' (photos of no known design count toward the overall mean only)."""
    z = np.asarray(z, np.float64)
    neg = np.asarray(negative, bool)
    if not neg.any():
        return {}
    overall = float(z[neg].mean())
    names = np.array([d or "" for d in designs])
    out: dict[str, float] = {}
    for d in sorted(set(names[neg]) - {""}):
        m = neg & (names == d)
        out[str(d)] = round(
            (float(z[m].sum()) + shrink * overall) / (int(m.sum()) + shrink) - overall, 6
        )
    return out


def _offset_logits(
    z: NDArray[np.floating], designs: Sequence[str | None] | None, offsets: dict[str, float]
) -> NDArray[np.float64]:
    """A class's branch logits less the offset for each photo's design."""
    z = np.asarray(z, np.float64)
    if designs is None or not offsets:
        return z
    return z - np.array([offsets.get(d, 0.0) if d else 0.0 for d in designs])


def choose_fusion(
    p_model: NDArray[np.float64],
    z_surface: NDArray[np.float64],
    y: NDArray[np.bool_],
    classes: Sequence[str],
    surface_classes: Sequence[str],
    force: Sequence[str] | None = None,
    min_gain: float = MIN_AP_GAIN,
    designs: Sequence[str | None] | None = None,
) -> tuple[dict[str, Fusion], dict[str, dict[str, float]]]:
    """Per class: the fitted fusion, kept where it raises the package's validation AP by at
    least `min_gain` (or, with `force`, for exactly the classes named there).

    With `designs` (each photo's design id), a class's fusion is fitted again on the branch
    logits less each design's offset (`design_offsets`), and the offsets are kept where that
    raises its validation AP by at least `min_gain` over the fusion without them."""
    fusion: dict[str, Fusion] = {}
    report: dict[str, dict[str, float]] = {}
    for j, name in enumerate(surface_classes):
        if name not in classes or (force is not None and name not in force):
            continue
        k = classes.index(name)
        if not y[:, k].any() or y[:, k].all():
            continue
        f = fit_fusion(p_model[:, k], z_surface[:, j], y[:, k])
        ap_model = average_precision(p_model[:, k], y[:, k])
        ap_fused = average_precision(apply_fusion(p_model[:, k], z_surface[:, j], f), y[:, k])
        report[name] = {"val_ap_package": ap_model, "val_ap_fused": ap_fused}
        if designs is not None:
            offsets = design_offsets(z_surface[:, j], ~y[:, k], designs)
            shifted = _offset_logits(z_surface[:, j], designs, offsets)
            f_d = fit_fusion(p_model[:, k], shifted, y[:, k])
            ap_d = average_precision(apply_fusion(p_model[:, k], shifted, f_d), y[:, k])
            report[name]["val_ap_fused_design_offsets"] = ap_d
            if offsets and ap_d >= ap_fused + min_gain:
                f = f_d.model_copy(update={"design_offsets": offsets})
                ap_fused = ap_d
                report[name]["val_ap_fused"] = ap_d
        if force is not None or ap_fused >= ap_model + min_gain:
            fusion[name] = f
    return fusion, report


def fused_probs(
    p_model: NDArray[np.float64],
    z_surface: NDArray[np.float64],
    classes: Sequence[str],
    surface_classes: Sequence[str],
    fusion: dict[str, Fusion],
    designs: Sequence[str | None] | None = None,
) -> NDArray[np.float64]:
    """The package's probabilities with each fused class's branch evidence combined in (its
    design offsets applied when each photo's design is given)."""
    out = np.asarray(p_model, np.float64).copy()
    for name, f in fusion.items():
        k, j = classes.index(name), list(surface_classes).index(name)
        z = _offset_logits(z_surface[:, j], designs, f.design_offsets)
        out[:, k] = apply_fusion(p_model[:, k], z, f)
    return out
