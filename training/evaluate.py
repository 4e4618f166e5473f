"""`kito eval`: calibrate + pick thresholds on validation, score a split, write metrics + report.

A checkpoint is calibrated and given thresholds here (`evaluate`); a finished model package is
scored at its own (`evaluate_package`). Both write metrics.json and the same HTML report."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from qc_model.errors import DataError
from qc_model.manifest import Manifest, Record
from training.calibrate import apply_temperature, fit_operating_point
from training.calibrate import logits_from_probs as _logits
from training.dataset import for_classes
from training.eval_report import write_report
from training.metrics import (
    any_defect,
    as_onehot,
    auroc,
    confusion_matrix,
    expected_calibration_error,
    macro_f1,
    macro_f1_ceiling,
    per_class_metrics,
    stratified_auroc,
)
from training.single_label_metrics import single_label_scores


@dataclass(frozen=True)
class EvalResult:
    out: Path
    metrics: dict[str, Any]


def group_breakdown(
    probs: NDArray,
    targets: NDArray,
    thresholds: Sequence[float],
    classes: Sequence[str],
    keys: Sequence[Sequence[str]],
) -> list[dict[str, Any]]:
    """Any-defect recall / false-hold and macro-F1 per group; a photo may sit in several groups."""
    members: dict[str, list[int]] = defaultdict(list)
    for i, ks in enumerate(keys):
        for k in ks:
            members[k].append(i)
    rows = []
    for key in sorted(members):
        idx = np.asarray(members[key])
        r = any_defect(probs[idx], targets[idx], thresholds, classes)
        rows.append(
            {
                "group": key,
                "photos": r.n,
                "defective": r.defective,
                "recall": r.recall,
                "false_hold_rate": r.false_hold_rate,
                "macro_f1": macro_f1(probs[idx], targets[idx], thresholds),
            }
        )
    return rows


def within_design(
    probs: NDArray, targets: NDArray, classes: Sequence[str], designs: Sequence[str]
) -> dict[str, Any]:
    """Per class, AUROC among each design's own photos and over same-design pairs overall.

    A network that tells a defect from a good surface ranks the defective photos of one design
    above that design's good photos; one that has learnt "metal pieces are often scratched" does
    not, however high its plain AUROC (which also compares, say, a brass chain with a bead
    bracelet)."""
    names = sorted(set(designs))
    g = np.asarray(designs)
    y = targets.astype(bool)
    k_all = range(len(classes))
    return {
        "classes": list(classes),
        "designs": names,
        "auroc": [[auroc(probs[g == d, k], y[g == d, k]) for k in k_all] for d in names],
        "positives": [[int(y[g == d, k].sum()) for k in k_all] for d in names],
        "stratified": [stratified_auroc(probs[:, k], y[:, k], designs) for k in k_all],
    }


def score(
    probs: NDArray,
    targets: NDArray,
    records: Sequence[Record],
    classes: Sequence[str],
    task: str,
    thresholds: Sequence[float],
) -> dict[str, Any]:
    """All numbers for one split at the given (calibrated) probabilities and thresholds."""
    rows = per_class_metrics(probs, targets, thresholds, classes)
    out: dict[str, Any] = {
        "photos": len(records),
        "per_class": [asdict(r) for r in rows],
        "macro_f1": macro_f1(probs, targets, thresholds),
        "any_defect": any_defect(probs, targets, thresholds, classes).as_dict(),
        "by_design": group_breakdown(
            probs, targets, thresholds, classes, [[r.design_id or "(none)"] for r in records]
        ),
        "by_capture": group_breakdown(
            probs, targets, thresholds, classes, [r.capture or ["(clean)"] for r in records]
        ),
    }
    if task != "single_label":
        out["within_design"] = within_design(
            probs, targets, classes, [r.design_id or "(none)" for r in records]
        )
        # Each class's F1 at its best threshold on these photos: their mean bounds macro-F1
        # for every threshold choice, so what thresholds cannot fix shows (research.ceiling).
        best, out["macro_f1_ceiling"] = macro_f1_ceiling(probs, targets)
        out["best_f1"] = [b.f1 for b in best]
    if task == "single_label":
        truth = as_onehot(targets, len(classes)).argmax(axis=1)
        m = confusion_matrix(probs.argmax(axis=1), truth, len(classes))
        out["confusion"] = m.tolist()
        out["accuracy"] = float(np.trace(m) / max(m.sum(), 1))
        out["single_label"] = single_label_scores(probs, targets, classes, thresholds)
    return out


def targets_for(records: Sequence[Record], classes: Sequence[str], task: str) -> NDArray:
    """(N,K) 0/1 for multi-label, (N,) indices for single-label."""
    index = {c: k for k, c in enumerate(classes)}
    if task == "single_label":
        return np.array([index[r.labels[0]] for r in records], dtype=np.int64)
    y = np.zeros((len(records), len(classes)), dtype=np.int64)
    for i, r in enumerate(records):
        for label in r.labels:
            y[i, index[label]] = 1
    return y


def evaluate_predictions(
    raw_val: NDArray,
    val_targets: NDArray,
    raw: NDArray,
    targets: NDArray,
    records: Sequence[Record],
    classes: Sequence[str],
    task: str,
    out: Path,
    provenance: dict[str, Any],
    target_recall: float = 0.97,
) -> EvalResult:
    """Uncalibrated probabilities of val and the scored split -> metrics.json + index.html."""
    op = fit_operating_point(raw_val, val_targets, classes, task, target_recall)
    probs = apply_temperature(_logits(raw, task), op.calibration.temperature, task)
    thresholds = op.threshold_vector(classes)
    metrics = {
        **provenance,
        "task": task,
        "classes": list(classes),
        "target_recall": target_recall,
        "calibration": asdict(op.calibration),
        "thresholds": {c: t.model_dump() for c, t in op.choice.thresholds.items()},
        "untuned_classes": op.choice.untuned,
        "ece_after": expected_calibration_error(probs, targets, task),
        "scores": score(probs, targets, records, classes, task, thresholds),
    }
    metrics = _json_safe(metrics)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, allow_nan=False) + "\n")
    panels = [
        (raw_val, val_targets, "val, before calibration"),
        (op.val_probs, val_targets, "val, after calibration"),
    ]
    write_report(out, metrics, thresholds, panels, probs, targets, classes, task)
    return EvalResult(out=out, metrics=metrics)


def _json_safe(obj: Any) -> Any:
    """NaN (e.g. AUROC of a class absent from the split) -> None: strict JSON has no NaN."""
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return None if np.isnan(obj) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def evaluate(
    checkpoint: Path,
    manifest_path: Path,
    out: Path,
    split: str = "test",
    target_recall: float = 0.97,
    workers: int = 1,
) -> EvalResult:
    """Fit temperature + thresholds on `val`, score `split`, write metrics.json and index.html.

    workers > 1: piece crops are made by that many processes and cached (KITO_CACHE_DIR)."""
    from training.checkpoint_io import load_trained
    from training.config import default_cache_dir
    from training.dataset import resolve_root
    from training.predict import predict_manifest

    manifest = Manifest.read(manifest_path)
    for name in ("val", split):
        if not manifest.split(name):
            raise DataError(f"{manifest_path}: no photos in split '{name}'")
    trained = load_trained(checkpoint)
    model = trained.model
    manifest = for_classes(manifest, trained.classes, manifest_path)
    root = resolve_root(manifest_path, None)
    par: dict[str, Any] = {"root": root, "quiet": False, "workers": workers}
    par["cache_dir"] = default_cache_dir() if workers > 1 else None
    raw_val, val_targets, _ = predict_manifest(model, manifest, "val", **par)
    raw, targets, records = predict_manifest(model, manifest, split, **par)
    provenance = {
        "checkpoint": str(checkpoint),
        "manifest": str(manifest_path),
        "manifest_version": Manifest.read(manifest_path).header.version,
        "split": split,
    }
    classes, task = list(manifest.header.classes), manifest.header.task
    return evaluate_predictions(
        raw_val, val_targets, raw, targets, records, classes, task, out, provenance, target_recall
    )


def package_probs(
    package: Path, records: Sequence[Record], root: Path, classes: Sequence[str], desc: str
) -> NDArray[np.float64]:
    """(N, K) probabilities as the service computes them: the package's own preprocessing,
    ONNX graph(s), temperature and surface fusion (training.compare.score_package)."""
    from training.compare import score_package

    return score_package(package, records, root, classes, desc).probs


def evaluate_package(
    package: Path, manifest_path: Path, out: Path, split: str = "test", workers: int = 1
) -> EvalResult:
    """Score `split` (and val, for its reliability) with a finished package at its own
    thresholds, as serving would: nothing is fitted again. The same report as a checkpoint's,
    and the same numbers again for the photos the photo gate passes ("judged").

    This is how a package without a checkpoint is evaluated: the bundled one, an INT8 one, one
    with a surface branch (whose fused scores exist only in the package)."""
    from qc_model.package import read_meta
    from training.dataset import resolve_root
    from training.judged import gate_passed

    meta = read_meta(package)
    manifest = Manifest.read(manifest_path)
    for name in ("val", split):
        if not manifest.split(name):
            raise DataError(f"{manifest_path}: no photos in split '{name}'")
    manifest = for_classes(manifest, meta.classes, manifest_path)
    root = resolve_root(manifest_path, None)
    classes, task = list(meta.classes), meta.task
    val_records, records = manifest.split("val"), manifest.split(split)
    val_probs = package_probs(package, val_records, root, classes, "val photos")
    probs = package_probs(package, records, root, classes, f"{split} photos")
    val_targets = targets_for(val_records, classes, task)
    targets = targets_for(records, classes, task)
    thresholds = [float(meta.thresholds[c].threshold) for c in classes]
    metrics = {
        "package": str(package),
        "model_version": f"{meta.name}@{meta.version}",
        "manifest": str(manifest_path),
        "manifest_version": manifest.header.version,
        "split": split,
        "threshold_source": "the package's thresholds",
        "surface_branch": sorted(meta.surface.fusion) if meta.surface is not None else None,
        "task": task,
        "classes": classes,
        "target_recall": meta.metrics.get("target_recall"),
        "calibration": {
            "temperature": meta.temperature,
            "ece_val": expected_calibration_error(val_probs, val_targets, task),
        },
        "thresholds": {c: meta.thresholds[c].model_dump() for c in classes},
        "untuned_classes": [],
        "ece_after": expected_calibration_error(probs, targets, task),
        "scores": score(probs, targets, records, classes, task, thresholds),
    }
    passed = gate_passed(records, root, workers, f"photo gate ({split})")
    if passed.any():
        kept = [r for r, ok in zip(records, passed, strict=True) if ok]
        metrics["judged"] = {
            "retake_share": float(1.0 - passed.mean()),
            "scores": score(probs[passed], targets[passed], kept, classes, task, thresholds),
        }
    out.mkdir(parents=True, exist_ok=True)
    extra: list[tuple[str, str]] = []
    if meta.anomaly is not None:
        from training.anomaly.evaluate import package_anomaly

        metrics["anomaly"], extra = package_anomaly(
            package, records, root, probs, classes, out, passed
        )
    metrics = _json_safe(metrics)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, allow_nan=False) + "\n")
    panels = [(val_probs, val_targets, "val"), (probs, targets, split)]
    write_report(out, metrics, thresholds, panels, probs, targets, classes, task, extra)
    return EvalResult(out=out, metrics=metrics)
