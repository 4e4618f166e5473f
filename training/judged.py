"""Which photos the service would judge: those the photo gate passes.

The service never asks the model about a photo the gate refuses; the artisan is asked for a
retake instead (qc_model.verdict.decide). Thresholds chosen for a defect recall on every
validation photo are pulled down by defects that a blurred, far or cut-off photo cannot show,
and every good piece pays for that in false holds. `kito surface attach --judged-only` and
`kito eval` therefore use these flags: the first to fit on the photos the model will see, the
second to report both populations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from qc_model.catalog import Design, default_catalog_dir, load_catalog
from qc_model.decode import SERVICE_DECODE_LONG_SIDE, reduce_whole
from qc_model.gate import check_photo, decode_long_side
from qc_model.inference import read_image
from qc_model.manifest import Record
from qc_model.package import PackageMeta

if TYPE_CHECKING:
    from training.calibrate import ThresholdChoice

_DESIGNS: dict[str, Design] | None = None


def _design(design_id: str | None) -> Design | None:
    global _DESIGNS
    if _DESIGNS is None:
        _DESIGNS = load_catalog(default_catalog_dir())
    return _DESIGNS.get(design_id or "")


def _passes(job: tuple[Path, str | None]) -> bool:
    """The gate on the photo as the service measures it: reduced like its decoder reduces a
    large JPEG (to KITO_DECODE_LONG_SIDE's default, more for a tight design), whether or not
    the package has a surface branch (serving.inspection.model_inspector)."""
    path, design_id = job
    design = _design(design_id)
    image, _ = reduce_whole(
        read_image(path), decode_long_side(design, floor=SERVICE_DECODE_LONG_SIDE)
    )
    return bool(check_photo(image, design).passed)


def gate_passed(
    records: Sequence[Record], root: Path, workers: int = 1, desc: str = "photo gate"
) -> NDArray[np.bool_]:
    """(N,) True where the photo gate (default limits, the record's catalog design) passes."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    jobs = [(root / r.image, r.design_id) for r in records]
    if workers > 1 and len(jobs) > workers:
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("forkserver")) as pool:
            flags = list(tqdm(pool.map(_passes, jobs, chunksize=8), total=len(jobs), desc=desc))
    else:
        flags = [_passes(j) for j in tqdm(jobs, desc=desc, unit="photo")]
    return np.asarray(flags, np.bool_)


def fit_flags(
    records: Sequence[Record], root: Path, workers: int, judged_only: bool, source: Path
) -> NDArray[np.bool_]:
    """Which val photos a fit uses: all, or with `judged_only` those the gate passes (a
    DataError naming `source` when it passes none)."""
    if not judged_only:
        return np.ones(len(records), np.bool_)
    flags = gate_passed(records, root, workers, "photo gate (val)")
    if not flags.any():
        from qc_model.errors import DataError

        raise DataError(
            f"{source}: the photo gate passes none of the {len(records)} val photos; nothing "
            "to fit on (leave out --judged-only)"
        )
    return flags


def operating_metrics(
    base: dict[str, Any],
    choice: ThresholdChoice,
    target_recall: float,
    probs: NDArray[np.floating],
    y: NDArray[np.bool_],
    classes: Sequence[str],
    *,
    judged_only: bool,
    photos_in_split: int,
) -> dict[str, Any]:
    """A package's `metrics` after its thresholds were chosen on `probs`/`y` (the photos fitted)."""
    from training.metrics import any_defect, macro_f1

    t = [choice.thresholds[c].threshold for c in classes]
    return {
        **base,
        "recall_level": choice.recall_level,
        "target_recall": target_recall,
        "untuned_classes": choice.untuned,
        "val": {
            "photos": len(y),
            "judged_only": judged_only,
            "photos_in_split": photos_in_split,
            "macro_f1": macro_f1(probs, y, t),
            "any_defect": any_defect(probs, y, t, classes).as_dict(),
        },
    }


# Photos of a data set and the folder their image paths are relative to (records_at).
Photos = tuple[list[Record], Path]


@dataclass(frozen=True)
class JudgedScores:
    """A package's probabilities, labels and gate flags on a val and a test set."""

    classes: list[str]
    target_recall: float
    thresholds: list[float]  # the package's own hold thresholds
    val: tuple[NDArray[np.float64], NDArray[np.bool_], NDArray[np.bool_]]  # probs, y, judged
    test: tuple[NDArray[np.float64], NDArray[np.bool_], NDArray[np.bool_]]


def judged_scores(package: Path, val: Photos, test: Photos, workers: int) -> JudgedScores:
    """Score `val` and `test` with `package` as the service does, and run the photo gate on
    both (a DataError when it passes no val photo)."""
    from qc_model.errors import DataError
    from qc_model.package import read_meta
    from training.evaluate import package_probs

    meta = read_meta(package)
    classes = list(meta.classes)
    (vr, vroot), (tr, troot) = val, test
    pv, pt = (package_probs(package, r, root, classes, n) for r, root, n in
              ((vr, vroot, "val photos"), (tr, troot, "test photos")))  # fmt: skip
    gv = gate_passed(vr, vroot, workers, "photo gate (val)")
    gt = gate_passed(tr, troot, workers, "photo gate (test)")
    if not gv.any():
        raise DataError(f"the photo gate passes none of the {len(vr)} val photos")
    yv = np.array([[c in r.labels for c in classes] for r in vr], dtype=bool)
    yt = np.array([[c in r.labels for c in classes] for r in tr], dtype=bool)
    return JudgedScores(
        classes=classes,
        target_recall=float(meta.metrics.get("target_recall") or 0.97),
        thresholds=[meta.thresholds[c].threshold for c in classes],
        val=(pv, yv, gv),
        test=(pt, yt, gt),
    )


def threshold_study(
    package: Path, val: Photos, test: Photos, workers: int
) -> list[dict[str, object]]:
    """A package's any-defect operating point with its own thresholds and with thresholds
    chosen again on the judged val photos, on all and on the judged test photos."""
    from training.calibrate import choose_thresholds
    from training.metrics import any_defect, macro_f1

    s = judged_scores(package, val, test, workers)
    classes = s.classes
    (pv, yv, gv), (pt, yt, gt) = s.val, s.test
    refit = choose_thresholds(pv[gv], yv[gv], classes, target_recall=s.target_recall)
    judged = [refit.thresholds[c].threshold for c in classes]
    rows: list[dict[str, object]] = []
    for source, t in (("the package's", s.thresholds), ("judged val photos", judged)):
        for scored, mask in (("all test photos", np.ones(len(pt), bool)), ("judged", gt)):
            ad = any_defect(pt[mask], yt[mask], t, classes)
            rows.append({
                "thresholds": source, "scored": scored, "photos": int(mask.sum()),
                "macro_f1": macro_f1(pt[mask], yt[mask], t), "recall": ad.recall,
                "false_hold": ad.false_hold_rate,
            })  # fmt: skip
    return rows


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
    from qc_model.errors import DataError
    from qc_model.holdout import check_against_default
    from qc_model.manifest import Manifest
    from qc_model.package import read_meta
    from training.calibrate import choose_thresholds
    from training.evaluate import package_probs
    from training.export import (
        copy_graphs,
        finish_package,
        git_commit,
        network_alone,
        staged_package,
    )
    from training.predict import resolve_root

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


def study_inputs(argv: list[str] | None, usage: str | None) -> tuple[Path, Photos, Photos, int]:
    """`PACKAGE --val PATH[:SPLIT] --test PATH[:SPLIT] [--workers N]`, the arguments of the
    studies that fit on judged val photos and score judged test photos: (package, val photos,
    test photos, workers); a DataError names a missing manifest or an empty split."""
    import argparse

    from training.score_packages import records_at

    p = argparse.ArgumentParser(description=usage)
    p.add_argument("package", type=Path)
    p.add_argument("--val", required=True, help="PATH[:SPLIT] whose judged photos fit")
    p.add_argument("--test", required=True, help="PATH[:SPLIT] whose judged photos score")
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args(argv)
    return args.package, records_at(args.val), records_at(args.test), args.workers


def main(argv: list[str] | None = None) -> None:
    """python -m training.judged PACKAGE --val DATA:val --test DATA [--workers 2]"""
    rows = threshold_study(*study_inputs(argv, main.__doc__))
    print("| thresholds from | scored on | photos | macro-F1 | recall | false-hold |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['thresholds']} | {r['scored']} | {r['photos']} | {r['macro_f1']:.3f} | "
              f"{r['recall']:.3f} | {r['false_hold']:.3f} |")  # fmt: skip


if __name__ == "__main__":
    main()
