"""`kito surface attach`: a trained branch put into a copy of a model package, its fusion fitted
and the thresholds chosen again on the calibration set's val split, exactly as `kito export`
chooses them."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from qc_model.errors import DataError
from qc_model.manifest import Manifest
from qc_model.package import (
    MODEL_FILE,
    SURFACE_FILE,
    PackageMeta,
    SurfaceMeta,
    open_session,
    read_meta,
)
from training.surface.checkpoint import load_surface
from training.surface.data import prepare
from training.surface.fusion import choose_fusion, fused_probs
from training.surface.onnx_export import export_surface_onnx, graph_tile
from training.surface.scoring import branch_logits, ort_logits

PARITY_ATOL = 1e-3  # max |Δ| of branch logits and of fused probabilities, ORT vs torch


class NoGainError(DataError):
    """The branch improves no class's validation AP: attaching it would change nothing good."""


def attach(
    package: Path,
    surface: Path,
    calibration_manifest: Path,
    out: Path,
    *,
    name: str | None = None,
    target_recall: float = 0.97,
    workers: int = 1,
    cache: Path | None = None,
    parity_samples: int = 8,
    fuse: Sequence[str] | None = None,
    holdout: Path | None = None,
    judged_only: bool = False,
    tile: int | None = None,
) -> PackageMeta:
    """A copy of `package` at `out` with the branch from `surface` (a surface.pt, or a package
    that has one), its fusion fitted and the thresholds chosen again on the val split.

    `fuse` names the classes to combine; by default, those whose validation AP improves.
    `judged_only`: fit on the val photos the photo gate passes, the only ones the service asks
    the model about (training.judged); the others would be sent back for a retake.
    `tile`: score the branch in tiles of this size over the piece (0: the whole crop); by
    default as the branch itself says (its SurfaceConfig.tile)."""
    from qc_model.holdout import check_against_default
    from qc_model.inference import Inferencer
    from qc_model.manifest import sha256_file
    from training.calibrate import choose_thresholds
    from training.compare import score_package
    from training.export import finish_package, git_commit, staged_package
    from training.judged import fit_flags, operating_metrics
    from training.predict import resolve_root

    if out.exists():
        raise DataError(f"{out}: already exists; choose a new package folder")
    meta = read_meta(package)
    if meta.task != "multilabel":
        raise DataError(f"{package}: a surface branch needs a multilabel package")
    source = Manifest.read(calibration_manifest)
    check_against_default(source, calibration_manifest, holdout)
    val = source.split("val")
    if not val:
        raise DataError(f"{calibration_manifest}: no photos in split 'val' to calibrate on")
    root = resolve_root(calibration_manifest, None)
    with staged_package(out) as tmp:
        torch_model = None
        # A branch carried from a package with 8-bit INT8 weights needs VNNI wherever it goes.
        vnni = meta.requires_vnni
        if surface.is_dir():
            vnni = vnni or read_meta(surface).requires_vnni
            carried = read_meta(surface).surface
            if carried is None:
                raise DataError(f"{surface}: this package has no surface branch to carry over")
            shutil.copyfile(surface / SURFACE_FILE, tmp / SURFACE_FILE)
            s_classes, cfg = list(carried.classes), carried.config
            training_info = carried.training
        else:
            torch_model, s_classes, cfg, training_info = load_surface(surface)
        if tile is not None:
            if tile % cfg.stride or not 0 <= tile <= 1024:
                raise DataError(
                    f"--tile {tile}: a tile is 0 (the whole crop) or up to 1024 px, a multiple "
                    f"of the branch's {cfg.stride} px cells"
                )
            cfg = cfg.model_copy(update={"tile": tile or None})
        if torch_model is not None:
            export_surface_onnx(torch_model, tmp / SURFACE_FILE, tile=cfg.tile)
        elif (fixed := graph_tile(tmp / SURFACE_FILE)) is not None and fixed != cfg.tile:
            raise DataError(
                f"{surface}: its branch graph takes only {fixed} px tiles; attach the branch's "
                "surface.pt to score it another way"
            )
        session = open_session(tmp / SURFACE_FILE, threads=2)
        samples = prepare(
            val, root, s_classes, cfg, cache or tmp / "samples", workers, "surface crops (val)"
        )
        shutil.rmtree(tmp / "samples", ignore_errors=True)
        z = ort_logits(session, samples, cfg, "surface branch (val)")
        parity = {"samples": 0, "max_abs_logits": 0.0}
        if torch_model is not None:
            z_torch = branch_logits(torch_model, samples[:parity_samples], cfg, "parity (torch)")
            diff = float(np.abs(z_torch - z[:parity_samples]).max())
            parity = {"samples": len(z_torch), "max_abs_logits": diff}
            if diff > PARITY_ATOL:
                raise DataError(
                    f"surface branch parity failed: max |Δlogit| {diff:.2e} on {len(z_torch)} "
                    f"photos (limit {PARITY_ATOL:g}); nothing was written"
                )
        classes = list(meta.classes)
        plain = score_package(package, val, root, classes)
        y = np.stack([[c in r.labels for c in classes] for r in val])
        if fuse is not None:
            unknown = sorted(set(fuse) - (set(s_classes) & set(classes)))
            if unknown or not fuse:
                raise DataError(
                    f"--fuse {','.join(fuse)}: the branch and the package both score only "
                    f"{', '.join(c for c in s_classes if c in classes)}"
                )
        fit = fit_flags(val, root, workers, judged_only, calibration_manifest)
        designs = [r.design_id for r in val]
        fusion, fit_report = choose_fusion(
            plain.probs[fit], z[fit], y[fit], classes, s_classes,
            force=list(fuse) if fuse else None,
            designs=[d for d, ok in zip(designs, fit, strict=True) if ok],
        )  # fmt: skip
        if not fusion:
            raise NoGainError(
                f"the surface branch improves no class's validation AP over {package.name} "
                f"({json.dumps(fit_report)}); nothing was written"
            )
        probs = fused_probs(plain.probs, z, classes, s_classes, fusion, designs)
        choice = choose_thresholds(probs[fit], y[fit], classes, target_recall=target_recall)
        smeta = SurfaceMeta(
            classes=s_classes,
            config=cfg,
            fusion=fusion,
            onnx_sha256=sha256_file(tmp / SURFACE_FILE),
            training={**training_info, "fit": fit_report, "parity": parity},
        )
        new = meta.model_copy(
            update={
                "name": name or meta.name,
                # The branch and the data its fusion and thresholds were fitted on: the same
                # branch attached on other photos is another package.
                "version": f"{out.name}-{smeta.onnx_sha256[:8]}-{source.header.version[:8]}",
                "thresholds": choice.thresholds,
                "surface": smeta,
                "requires_vnni": vnni,
                "git_commit": git_commit(),
                # "calibration" stays the temperature's data; "fusion" names the fit's.
                "dataset_versions": {**meta.dataset_versions, "fusion": source.header.version},
                "metrics": operating_metrics(
                    meta.metrics,
                    choice,
                    target_recall,
                    probs[fit],
                    y[fit],
                    classes,
                    judged_only=judged_only,
                    photos_in_split=len(val),
                ),
            }
        )
        shutil.copyfile(package / MODEL_FILE, tmp / MODEL_FILE)
        new = finish_package(tmp, new)
        # The finished package, through the serving path, gives what was fitted here.
        check = val[:parity_samples]
        got = Inferencer(tmp).predict([root / r.image for r in check], designs[: len(check)])
        served = np.array([[p.probs[c] for c in classes] for p in got])
        diff = float(np.abs(served - probs[: len(check)]).max())
        if diff > PARITY_ATOL:
            raise DataError(
                f"the attached package disagrees with the fit: max |Δp| {diff:.2e} on "
                f"{len(check)} photos (limit {PARITY_ATOL:g}); nothing was written"
            )
    return read_meta(out)
