"""`kito anomaly thresholds`: the review level chosen on labelled val photos for a target recall.

The level fitted at `kito anomaly fit` is a false-hold quantile of held-out good photos, which
needs no defect at all. When labelled photos exist, the level can be chosen like the
classifier's thresholds instead: the highest level at which the anomaly model alone holds
`target_recall` of the defective val photos (those the photo gate passes, the only ones the
service scores). The level is one number for every design, because levels are calibrated per
design. Settings still override it (KITO_THRESHOLD_OVERRIDES, "unusual_surface").
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from qc_model.anomaly import (
    ANOMALY_BANKS,
    ANOMALY_META,
    ANOMALY_ONNX,
    AnomalyMeta,
    AnomalyModel,
    FusedReview,
    ReviewChoice,
)
from qc_model.errors import DataError
from qc_model.manifest import Manifest, Record
from training.anomaly.fit import is_good
from training.anomaly.package import attach, staged

LEVEL_CEILING = 1.0 - 1e-6  # levels are a normal CDF: strictly inside (0, 1)


def level_for_recall(
    levels: NDArray[np.float64], bad: NDArray[np.bool_], target_recall: float
) -> float:
    """The highest level t with mean(levels[bad] >= t) >= target_recall."""
    if not bad.any():
        raise DataError("no defective photos to choose a level for a recall on")
    ranked = np.sort(levels[bad])[::-1]
    k = max(1, math.ceil(target_recall * len(ranked) - 1e-9))
    return float(min(max(ranked[k - 1], 1e-6), LEVEL_CEILING))


def labelled(
    records: list[Record],
    root: Path,
    manifest_path: Path,
    split: str,
    judged_only: bool,
    workers: int,
) -> tuple[list[Record], NDArray[np.bool_]]:
    """(the photos to choose on: those the photo gate passes with `judged_only`; which are
    defective), or a DataError when they are not both good and defective ones."""
    from training.judged import gate_passed

    if judged_only and records:
        passed = gate_passed(records, root, workers, f"photo gate ({split})")
        records = [r for r, ok in zip(records, passed, strict=True) if ok]
    bad = np.array([not is_good(r) for r in records], bool)
    if not bad.any() or bad.all():
        raise DataError(
            f"{manifest_path}: split '{split}' needs good and defective photos the model "
            f"scores{' that the photo gate passes' if judged_only else ''} "
            f"({int(bad.sum())} defective, {int((~bad).sum())} good)"
        )
    return records, bad


def choose_review(
    package: Path,
    manifest_path: Path,
    out: Path,
    target_recall: float,
    split: str = "val",
    judged_only: bool = True,
    workers: int = 1,
) -> AnomalyMeta:
    """A copy of `package` at `out` whose anomaly review level is chosen on `split`."""
    from training.anomaly.evaluate import anomaly_levels
    from training.predict import resolve_root

    model = AnomalyModel(package, threads=2)
    manifest = Manifest.read(manifest_path)
    if (package / "package.json").is_file():
        # Defective means what kito eval --package counts: the classifier's classes (a wrong
        # size or colour alone is the spec checks' to find).
        from qc_model.package import read_meta
        from training.dataset import for_classes

        manifest = for_classes(manifest, read_meta(package).classes, manifest_path)
    root = resolve_root(manifest_path, None)
    candidates = [r for r in manifest.split(split) if model.covers(r.design_id)]
    records, bad = labelled(candidates, root, manifest_path, split, judged_only, workers)
    levels, _ = anomaly_levels(model, records, root, f"anomaly ({split})")
    level = level_for_recall(levels, bad, target_recall)
    held = levels >= level
    review = ReviewChoice(
        level=level,
        target_recall=target_recall,
        manifest_version=manifest.header.version,
        good=int((~bad).sum()),
        defective=int(bad.sum()),
        recall=float(held[bad].mean()),
        false_hold=float(held[~bad].mean()),
    )
    return write_choice(package, out, model.meta.model_copy(update={"review": review}))


def write_choice(package: Path, out: Path, meta: AnomalyMeta) -> AnomalyMeta:
    """A copy of `package` at `out` with anomaly.json replaced by `meta`."""
    with staged(out, package) as tmp:
        for name in (ANOMALY_ONNX, ANOMALY_BANKS):
            if (package / name).is_file():  # a model of source "branch" has no anomaly.onnx
                shutil.copyfile(package / name, tmp / name)
        text = meta.model_dump_json(indent=2) + "\n"
        (tmp / ANOMALY_META).write_text(text, encoding="utf-8")
        if (tmp / "package.json").is_file():
            attach(tmp, meta)
    return meta


def choose_fused(
    package: Path,
    manifest_path: Path,
    out: Path,
    target_recall: float,
    split: str = "val",
    judged_only: bool = True,
    workers: int = 1,
    guard_budget: float = 0.02,
) -> AnomalyMeta:
    """A copy of `package` at `out` with the fused review rule (training/anomaly/fused.py)
    chosen on `split` for `target_recall`, and a level guard that holds at most `guard_budget`
    more good photos there (0: none); the package's anomaly model must read its branch."""
    from qc_model.package import read_meta
    from training.anomaly.fused import (
        branch_scores_of,
        choose_guard,
        choose_rule,
        classifier_scores,
        held_classifier,
        held_fused,
    )
    from training.dataset import for_classes
    from training.predict import resolve_root

    if not (package / "package.json").is_file():
        raise DataError(f"{package}: a fused rule needs a package with a classifier")
    meta = read_meta(package)
    manifest = for_classes(Manifest.read(manifest_path), meta.classes, manifest_path)
    root = resolve_root(manifest_path, None)
    candidates = [r for r in manifest.split(split) if r.design_id]
    records, bad = labelled(candidates, root, manifest_path, split, judged_only, workers)
    probs, levels, centred, classes, _ = branch_scores_of(
        package, records, root, f"scores ({split})"
    )
    cls = classifier_scores(package, probs, classes)
    w, t, recall, false_hold = choose_rule(cls, centred, bad, target_recall)
    # A level guard for defects no class knows, within `guard_budget` more good photos held.
    guard, guard_fh = None, None
    if guard_budget > 0:
        guard, guard_fh = choose_guard(held_fused(cls, centred, w, t), levels, bad, guard_budget)
    # The classifier alone, its margin's threshold chosen on the same photos and target.
    _, t_cls, _, fh_cls = choose_rule(cls, np.zeros(len(bad)), bad, target_recall, (0.0,))
    alone = held_classifier(cls)
    fused = FusedReview(
        weight=w,
        threshold=t,
        target_recall=target_recall,
        manifest_version=manifest.header.version,
        good=int((~bad).sum()),
        defective=int(bad.sum()),
        recall=recall,
        false_hold=false_hold,
        classifier_recall=float(alone[bad].mean()),
        classifier_false_hold=float(alone[~bad].mean()),
        classifier_threshold=t_cls,
        classifier_threshold_false_hold=fh_cls,
        guard=guard,
        guard_budget=guard_budget if guard_budget > 0 else None,
        guard_false_hold=guard_fh if guard is not None else None,
    )
    anomaly = AnomalyModel(package, threads=1).meta
    return write_choice(package, out, anomaly.model_copy(update={"fused": fused}))
