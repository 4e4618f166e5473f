"""Champion vs challenger on the same photos, each as its exported package, as serving runs it.

Each package scores the photos through its own preprocessing and ONNX graph (the one that
would serve) and is judged at its own operating thresholds, over the classes both packages
score: on the frozen holdout, and on the newly reviewed photos that were held out of training
(the reviewed data set's `test` split). The promotion gate (qc_model.promotion) reads the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from qc_model.errors import DataError
from qc_model.inference import Inferencer
from qc_model.manifest import Manifest, Record
from qc_model.package import read_meta
from qc_model.promotion import GateResult, Scores, promotion_gate
from training.metrics import any_defect, macro_f1, per_class_metrics

SETS = ("holdout", "reviewed")


@dataclass
class PackageScores:
    version: str
    probs: NDArray[np.float64]  # (N, K) calibrated, compared classes only
    thresholds: list[float]
    held: NDArray[np.bool_]  # (N,) the any-defect decision at the operating thresholds
    per_class: list[dict[str, Any]]
    any_defect: dict[str, float]
    scores: Scores

    def metrics(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "photos": self.scores.photos,
            "macro_f1": self.scores.macro_f1,
            "any_defect": self.any_defect,
            "agreement": self.scores.agreement,
            "per_class": self.per_class,
        }


@dataclass
class PhotoSet:
    name: str
    root: Path
    records: list[Record]
    targets: NDArray[np.int64]  # (N, K) 0/1 over the compared classes
    champion: PackageScores
    challenger: PackageScores


@dataclass
class Comparison:
    champion: str
    challenger: str
    classes: list[str]
    sets: dict[str, PhotoSet]
    gate: GateResult

    def metrics(self) -> dict[str, Any]:
        """What the registry keeps with the challenger (JSON; NaN written as null)."""
        out: dict[str, Any] = {"classes": self.classes, "gate": self.gate.as_dict()}
        for name, s in self.sets.items():
            out[name] = {
                "champion": s.champion.metrics(),
                "challenger": s.challenger.metrics(),
            }
        return _json_safe(out)


def _targets(records: Sequence[Record], classes: Sequence[str]) -> NDArray[np.int64]:
    index = {c: k for k, c in enumerate(classes)}
    y = np.zeros((len(records), len(classes)), np.int64)
    for i, r in enumerate(records):
        for label in r.labels:
            if label in index:  # a spec defect (size, colour) is not the network's to see
                y[i, index[label]] = 1
    return y


def score_package(
    package_dir: Path,
    records: Sequence[Record],
    root: Path,
    classes: Sequence[str],
    desc: str = "photos",
) -> PackageScores:
    """Every photo scored as serving scores it (`Inferencer`), with a progress bar."""
    from tqdm import tqdm

    inf = Inferencer(package_dir)
    version = f"{inf.meta.name}@{inf.meta.version}"
    targets = _targets(records, classes)
    probs = np.zeros((len(records), len(classes)), np.float64)
    step = inf.batch_size
    with tqdm(total=len(records), desc=desc, unit="photo", leave=False) as bar:
        for start in range(0, len(records), step):
            chunk = records[start : start + step]
            designs = [r.design_id for r in chunk]
            for i, p in enumerate(inf.predict([root / r.image for r in chunk], designs)):
                probs[start + i] = [p.probs[c] for c in classes]
            bar.update(len(chunk))
    thresholds = [float(inf.meta.thresholds[c].threshold) for c in classes]
    held = (probs >= np.asarray(thresholds)).any(axis=1)
    truth = targets.any(axis=1)
    ad = any_defect(probs, targets, thresholds, classes) if records else None
    return PackageScores(
        version=version,
        probs=probs,
        thresholds=thresholds,
        held=held,
        per_class=[asdict(r) for r in per_class_metrics(probs, targets, thresholds, classes)]
        if records
        else [],
        any_defect=ad.as_dict() if ad else {},
        scores=Scores(
            photos=len(records),
            macro_f1=macro_f1(probs, targets, thresholds) if records else float("nan"),
            any_recall=ad.recall if ad else float("nan"),
            agreement=float((held == truth).mean()) if records else float("nan"),
        ),
    )


def _records(path: Path, split: str | None) -> tuple[list[Record], Path]:
    m = Manifest.read(path)
    root = path if path.is_dir() else path.parent
    return (m.split(split) if split else list(m.records)), root


def compare(
    champion_dir: Path,
    challenger_dir: Path,
    holdout: Path,
    reviewed: Path,
    reviewed_split: str = "test",
) -> Comparison:
    """Score both packages on the holdout and on the reviewed batch, then run the gate."""
    metas = [read_meta(champion_dir), read_meta(challenger_dir)]
    if any(m.task != "multilabel" for m in metas):
        raise DataError("the promotion gate compares multi-label defect packages")
    classes = [c for c in metas[0].classes if c in metas[1].classes]
    if not classes:
        raise DataError("champion and challenger score no class in common")
    sets: dict[str, PhotoSet] = {}
    for name, (path, split) in zip(
        SETS, ((holdout, None), (reviewed, reviewed_split)), strict=True
    ):
        records, root = _records(path, split)
        sets[name] = PhotoSet(
            name=name,
            root=root,
            records=records,
            targets=_targets(records, classes),
            champion=score_package(champion_dir, records, root, classes),
            challenger=score_package(challenger_dir, records, root, classes),
        )
    h, r = sets["holdout"], sets["reviewed"]
    if not h.records:
        raise DataError(f"{holdout}: the holdout has no photos")
    gate = promotion_gate(
        h.champion.scores, h.challenger.scores, r.champion.scores, r.challenger.scores
    )
    return Comparison(
        champion=h.champion.version,
        challenger=h.challenger.version,
        classes=classes,
        sets=sets,
        gate=gate,
    )


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return None if np.isnan(obj) else float(obj)
    if isinstance(obj, np.integer | np.bool_):
        return obj.item()
    return obj
