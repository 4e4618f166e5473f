"""The fused review rule of the classifier and the anomaly model (qc_model.verdict.FusedRule):
its arithmetic over many photos, and its weight and threshold chosen on labelled photos.

A photo is held when a class reaches its fail threshold, or (where the anomaly model scores
the photo) when margin + weight * centred >= threshold; a photo no bank covers is held as
before, when a class reaches its review band. margin: the classifier's highest
logit(p) - logit(review_low) over the defect classes; centred: log(anomaly score / its
design's median good score). The rule is chosen like the classifier's thresholds: on val
photos, the fewest good photos held with at least the target share of defective ones held.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from qc_model.anomaly import AnomalyModel
from qc_model.errors import DataError
from qc_model.manifest import Record
from qc_model.surface import logit

# Candidate weights of the anomaly term, in logits per unit of log distance. The research probe
# that led here (research/README.md, "Deleted") chose 1 to 4 on the seed-28 renders; the grid
# brackets that.
WEIGHTS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)


@dataclass(frozen=True)
class ClassifierScores:
    """The package's probabilities and review bands for the defect classes (columns)."""

    probs: NDArray[np.float64]  # (N, K) defect classes only
    low: NDArray[np.float64]  # (K,) review_low
    high: NDArray[np.float64]  # (K,) review_high

    @property
    def margin(self) -> NDArray[np.float64]:
        return np.asarray((logit(self.probs) - logit(self.low)).max(axis=1), np.float64)

    @property
    def fails(self) -> NDArray[np.bool_]:
        return np.asarray((self.probs >= self.high).any(axis=1), np.bool_)

    def subset(self, rows: NDArray[np.intp]) -> ClassifierScores:
        return ClassifierScores(self.probs[rows], self.low, self.high)


def classifier_scores(package: Path, probs: NDArray[Any], classes: list[str]) -> ClassifierScores:
    """The defect columns of `probs` (N, len(classes)) with the package's bands."""
    from qc_model.package import read_meta
    from qc_model.verdict import defect_classes

    meta = read_meta(package)
    cols = [i for i, c in enumerate(classes) if c in defect_classes(meta.task, classes)]
    if not cols:
        raise DataError(f"{package}: no defect class to fuse the anomaly model with")
    names = [classes[i] for i in cols]
    return ClassifierScores(
        probs=np.asarray(probs, np.float64)[:, cols],
        low=np.array([meta.thresholds[c].review_low for c in names]),
        high=np.array([meta.thresholds[c].review_high for c in names]),
    )


def held_classifier(c: ClassifierScores) -> NDArray[np.bool_]:
    """The classifier alone as the service decides: a class at its review band or above."""
    return np.asarray(c.margin >= 0, np.bool_)


def held_fused(
    c: ClassifierScores,
    centred: NDArray[np.float64],
    weight: float,
    threshold: float,
    levels: NDArray[np.float64] | None = None,
    guard: float | None = None,
) -> NDArray[np.bool_]:
    """The fused rule as qc_model.verdict.decide applies it, photo by photo (with `guard`, also
    every photo whose anomaly level reaches it)."""
    m = c.margin
    covered = ~np.isnan(centred)
    fused = m + weight * np.where(covered, centred, 0.0)
    if guard is not None and levels is not None:
        fused = np.where(covered & (np.nan_to_num(levels) >= guard), np.inf, fused)
    return np.asarray(c.fails | np.where(covered, fused >= threshold, m >= 0), np.bool_)


def choose_guard(
    held: NDArray[np.bool_], levels: NDArray[np.float64], bad: NDArray[np.bool_], budget: float
) -> tuple[float | None, float]:
    """(the lowest anomaly level whose holds add at most `budget` of the good photos to those
    `held` already, the false-hold with it); (None, as before) when no level fits."""
    good = ~bad
    base = float(held[good].mean())
    lv = np.nan_to_num(levels, nan=0.0)
    best: tuple[float | None, float] = (None, base)
    for level in np.unique(lv[good & ~held])[::-1]:  # the highest first: holds grow as it falls
        fh = float((held | (lv >= level))[good].mean())
        if fh - base > budget + 1e-12:
            break
        best = (float(level), fh)
    return best


FUSED_RULE = "fused rule"


def decisions_of(
    c: ClassifierScores, centred: NDArray[np.float64], rule: Any, levels: NDArray[np.float64]
) -> dict[str, NDArray[np.bool_]]:
    """Held or not, photo by photo: the fused rule (a FusedReview), the classifier at its review
    bands, and the classifier's margin at the threshold chosen with the rule on the same photos
    for the same target (when recorded): the comparison that isolates the anomaly model."""
    out = {
        FUSED_RULE: held_fused(c, centred, rule.weight, rule.threshold),
        "classifier (review bands)": held_classifier(c),
    }
    if rule.guard is not None:
        out[FUSED_RULE] = held_fused(
            c, centred, rule.weight, rule.threshold, levels=levels, guard=rule.guard
        )
        out["fused rule without its level guard"] = held_fused(
            c, centred, rule.weight, rule.threshold
        )
    if rule.classifier_threshold is not None:
        t = rule.classifier_threshold
        out["classifier (margin threshold chosen on the same val photos)"] = np.asarray(
            c.fails | (c.margin >= t), np.bool_
        )
    return out


def choose_rule(
    c: ClassifierScores,
    centred: NDArray[np.float64],
    bad: NDArray[np.bool_],
    target_recall: float,
    weights: tuple[float, ...] = WEIGHTS,
) -> tuple[float, float, float, float]:
    """(weight, threshold, recall, false-hold) with recall >= target and the fewest good photos
    held (ties: the higher threshold). DataError when no rule reaches the target."""
    if not bad.any() or bad.all():
        raise DataError("choosing a fused rule needs good and defective photos")
    covered = ~np.isnan(centred)
    if not covered.any():
        raise DataError("no photo has an anomaly score: no bank covers their designs")
    best: tuple[float, float, float, float] | None = None
    for w in weights:
        fused = c.margin + w * np.where(covered, centred, 0.0)
        for t in np.unique(fused[covered & bad]):
            held = held_fused(c, centred, w, float(t))
            recall, fh = float(held[bad].mean()), float(held[~bad].mean())
            if recall + 1e-12 < target_recall:
                continue
            if best is None or fh < best[3] or (fh == best[3] and t > best[1]):
                best = (float(w), float(t), recall, fh)
    if best is None:
        raise DataError(f"no fused rule holds {target_recall:.0%} of the defective photos")
    return best


def branch_scores_of(
    package: Path, records: list[Record], root: Path, desc: str
) -> tuple[
    NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], list[str], list[str | None]
]:
    """For a package whose anomaly model reads its branch: (probabilities (N, K), anomaly levels
    (N,), centred scores (N,), NaN where no bank covers the design; the classes; the bank that
    scored each photo), from one run of both networks per photo, as the service runs them."""
    from qc_model.inference import Inferencer, read_image

    inf = Inferencer(package, threads=2)
    model = inf.package.anomaly
    if model is None or not isinstance(model, AnomalyModel) or not model.from_branch:
        raise DataError(f"{package}: no anomaly model of source 'branch'")
    probs = np.zeros((len(records), len(inf.classes)))
    levels, centred = np.full(len(records), np.nan), np.full(len(records), np.nan)
    banks: list[str | None] = [None] * len(records)
    for i, r in enumerate(tqdm(records, desc=desc, unit="photo", leave=False)):
        (pred,) = inf.predict(read_image(root / r.image), designs=[r.design_id])
        probs[i] = [pred.probs[k] for k in inf.classes]
        if pred.cell_features is not None and pred.cell_count is not None:
            a = model.score_cells(pred.cell_features, pred.cell_count, r.design_id, pred.crop_box)
            if a is not None:
                levels[i], centred[i], banks[i] = a.level, a.centred, a.bank
    return probs, levels, centred, list(inf.classes), banks


def false_hold_at_recall(
    score: NDArray[np.float64], bad: NDArray[np.bool_], recall: float
) -> tuple[float, float]:
    """(recall, false-hold) of `score >= t` at the t with recall >= `recall` and the fewest good
    photos held: an operating point read off these very photos, for comparing two scores."""
    best = (1.0, 1.0)
    for t in np.unique(score[bad]):
        held = score >= t
        r, fh = float(held[bad].mean()), float(held[~bad].mean())
        if r + 1e-12 >= recall and fh < best[1]:
            best = (r, fh)
    return best


def matched_recall(
    c: ClassifierScores, centred: NDArray[np.float64], weight: float, bad: NDArray[np.bool_],
    rule: NDArray[np.bool_],
) -> dict[str, dict[str, float]]:  # fmt: skip
    """Each decision at the other's recall, thresholds read off these photos (all covered by a
    bank): the classifier's margin at the fused rule's recall, the fused score (same weight) at
    the classifier's band recall. A fail is held by both whatever the threshold."""
    big = np.inf
    margin = np.where(c.fails, big, c.margin)
    fused = np.where(c.fails, big, c.margin + weight * centred)
    r_rule = float(rule[bad].mean())
    r_cls = float(held_classifier(c)[bad].mean())
    out = {}
    for name, score, r in (
        ("classifier at the fused rule's recall", margin, r_rule),
        ("fused score at the classifier's recall", fused, r_cls),
    ):
        recall, fh = false_hold_at_recall(score, bad, r)
        out[name] = {"recall": recall, "false_hold_rate": fh}
    return out
