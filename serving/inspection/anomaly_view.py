"""The anomaly model in the service: which photos it scores, its review rule, and what the
inspection's details say about it (docs/ANOMALY.md, "In the service").

An anomaly model of source "branch" scores the surface branch's cells of the run the
inferencer already made (`Prediction.cell_features`); one of source "extractor" runs its own
graph on the photo, reusing the gate's piece location and mat.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from qc_model.anomaly import AnomalyModel, AnomalyResult
from qc_model.decode import DecodedPhoto
from qc_model.gate import GateResult
from qc_model.inference import Prediction
from qc_model.messages import UNUSUAL_SURFACE, review_message
from qc_model.verdict import FusedRule, PhotoDetail


@dataclass(frozen=True)
class AnomalyRule:
    """How the service turns anomaly scores into review: a level alone (`review`), or the
    fused rule chosen on val photos with the classifier (`fused`, when the package has one and
    settings do not override the level)."""

    review: float
    fused: FusedRule | None

    @classmethod
    def of(cls, model: AnomalyModel, override: tuple[float, float] | None) -> AnomalyRule:
        """The package's rule; KITO_THRESHOLD_OVERRIDES' `unusual_surface` level replaces it
        (a level of 1.0 turns the anomaly model's holds off)."""
        meta = model.meta
        if override is not None:
            return cls(review=float(override[0]), fused=None)
        f = meta.fused
        rule = FusedRule(weight=f.weight, threshold=f.threshold, guard=f.guard) if f else None
        return cls(review=meta.review_level, fused=rule)


def score_photos(
    model: AnomalyModel | None,
    photos: list[DecodedPhoto],
    gates: list[GateResult],
    factors: list[int],
    predictions: list[Prediction],
    design: str,
) -> list[AnomalyResult | None]:
    """The anomaly model on each photo the gate passed, when it has a bank for the design
    (its own or its family's); None for the others, and for every photo without a model."""
    if model is None or not model.covers(design):
        return [None] * len(photos)
    out: list[AnomalyResult | None] = []
    for photo, gate, f, pred in zip(photos, gates, factors, predictions, strict=True):
        if not gate.passed:
            out.append(None)
        elif model.from_branch:
            feats, count = pred.cell_features, pred.cell_count
            if feats is None or count is None:  # the branch did not run (no piece crop)
                out.append(None)
            else:
                out.append(model.score_cells(feats, count, design, pred.crop_box))
        else:
            loc, mat = gate.location, gate.mat
            if f > 1:
                loc = loc.enlarged(f, photo.image.shape[:2]) if loc is not None else None
                mat = mat.enlarged(f) if mat is not None else None
            out.append(model.score(photo.image, design, loc, mat))
    return out


def held_by_anomaly(a: AnomalyResult | None, rule: AnomalyRule | None, photo: PhotoDetail) -> bool:
    """Whether the anomaly model is what sends the photo to review: its level reaches the
    review level, or the fused rule holds a photo on which no class reaches its band (where
    one does, that class's own map says more)."""
    if a is None or rule is None:
        return False
    if rule.fused is not None:
        return photo.fused is not None and photo.call == "review" and not photo.in_band
    return a.level >= rule.review


def anomaly_heatmap(
    a: AnomalyResult | None, held: bool, image_size: tuple[int, int]
) -> dict[str, Any] | None:
    """The anomaly map replaces the class heatmap on a photo it sends to review."""
    if a is None or not held:
        return None
    return {
        "class": UNUSUAL_SURFACE,
        "score": round(a.level, 4),
        "crop_box": list(a.box),
        "image_size": list(image_size),
        "grid": np.round(a.heatmap.astype(np.float64), 3).tolist(),
    }


def anomaly_details(
    anomalies: list[AnomalyResult | None], rule: AnomalyRule, reasons: list[Any]
) -> dict[str, Any]:
    unusual = any(r.code == UNUSUAL_SURFACE for r in reasons)
    fused = rule.fused
    return {
        "review_from": rule.review if fused is None else None,
        "fused": None if fused is None else fused.model_dump(),
        "photos": [
            None
            if a is None
            else {
                "level": round(a.level, 4),
                "score": round(a.score, 4),
                "centred": round(a.centred, 4),
                "bank": a.bank,
                "fallback": a.fallback,
            }
            for a in anomalies
        ],
        "message": (
            {lang: review_message(UNUSUAL_SURFACE, lang) for lang in ("en", "sw")}
            if unusual
            else None
        ),
    }
