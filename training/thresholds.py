"""`kito thresholds`: a package's operating thresholds chosen again, on the photos the service
judges (training.judged) or on all; the networks stay as they are."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from qc_model.errors import DataError
from qc_model.holdout import check_against_default
from qc_model.manifest import Manifest
from qc_model.package import PackageMeta, read_meta
from training.calibrate import choose_thresholds
from training.dataset import resolve_root
from training.evaluate import package_probs
from training.judged import fit_flags, operating_metrics
from training.package_io import (
    copy_graphs,
    finish_package,
    git_commit,
    network_alone,
    staged_package,
)


def rethreshold(
    package: Path,
    calibration_manifest: Path,
    out: Path,
    *,
    judged_only: bool = True,
    target_recall: float | None = None,
    workers: int = 1,
    holdout: Path | None = None,
    without_branch: bool = False,
) -> PackageMeta:
    """A copy of `package` at `out` whose operating thresholds are chosen again (as `kito
    export` chooses them) on the calibration set's val split: on the photos the gate passes
    when `judged_only`. The networks, the calibration and any branch are the package's own;
    what the package scores does not change, only where it holds and fails.

    With `without_branch` the copy leaves the package's surface branch out: the defect network
    alone, with thresholds chosen for its own scores (a fused class's thresholds apply to the
    fused scores only): for a CPU too slow to serve the branch, at the cost of finding the fine
    surface defects less often (docs/MODEL.md, "Without the branch")."""
    if out.exists():
        raise DataError(f"{out}: already exists; choose a new package folder")
    meta = read_meta(package)
    if meta.task != "multilabel":
        raise DataError(f"{package}: thresholds are chosen again for multilabel packages only")
    if without_branch and meta.surface is None:
        raise DataError(f"{package}: has no surface branch to leave out")
    target = target_recall or float(meta.metrics.get("target_recall") or 0.97)
    source = Manifest.read(calibration_manifest)
    check_against_default(source, calibration_manifest, holdout)
    val = source.split("val")
    if not val:
        raise DataError(f"{calibration_manifest}: no photos in split 'val' to choose them on")
    root = resolve_root(calibration_manifest, None)
    classes = list(meta.classes)
    fit = fit_flags(val, root, workers, judged_only, calibration_manifest)
    y = np.array([[c in r.labels for c in classes] for r in val])[fit]
    with staged_package(out) as tmp:
        scored, metrics = package, dict(meta.metrics)
        if without_branch:
            assert meta.surface is not None
            metrics["branch_left_out"] = {
                "from": f"{meta.name}@{meta.version}",
                "surface_onnx_sha256": meta.surface.onnx_sha256,
                "fused": list(meta.surface.fusion),
            }
            # The network alone is staged first, so that its own scores are what is fitted.
            meta = network_alone(package, tmp)
            scored = tmp
        else:
            copy_graphs(package, tmp, meta)
        probs = package_probs(scored, val, root, classes, "val photos")[fit]
        choice = choose_thresholds(probs, y, classes, target_recall=target)
        update = {
            "version": f"{out.name}-{source.header.version[:8]}",
            "thresholds": choice.thresholds,
            "git_commit": git_commit(),
            # "calibration" stays: the temperature was fitted there, not here.
            "dataset_versions": {**meta.dataset_versions, "thresholds": source.header.version},
            "metrics": operating_metrics(
                metrics,
                choice,
                target,
                probs,
                y,
                classes,
                judged_only=judged_only,
                photos_in_split=len(val),
            ),
        }
        written = finish_package(tmp, meta.model_copy(update=update))
    return written
