"""Verdict policy: pure functions from gate results, defect scores and spec checks to a decision
of pass / fail / review / retake. No I/O; thresholds come in as arguments."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict

from qc_model.gate import GateResult
from qc_model.manifest import GOOD
from qc_model.messages import UNUSUAL_SURFACE, retake_message
from qc_model.spec_checks import CheckResult
from qc_model.taxonomy import DEFECT_DESCRIPTIONS, DEFECT_LABELS

Decision = Literal["pass", "fail", "review", "retake"]
PhotoCall = Literal["fail", "review", "pass", "unusable"]


class Band(BaseModel):
    """Review band of one class: score >= t_high fails, t_low <= score < t_high goes to review."""

    model_config = ConfigDict(frozen=True)

    t_low: float
    t_high: float


class PhotoInput(BaseModel):
    """One photo of the piece: its gate result (None: not gated) and the model's scores."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    gate: GateResult | None = None
    probs: dict[str, float] | None = None
    # The anomaly model's level for the photo (0..1, calibrated on its design's good photos);
    # None: the package has no anomaly model for the design, or it was not asked.
    anomaly: float | None = None
    # log(anomaly score / its design's median good score), for a fused review rule.
    anomaly_centred: float | None = None


class FusedRule(BaseModel):
    """Review when margin + weight * anomaly_centred >= threshold (qc_model.anomaly_meta's
    FusedReview, chosen on val photos): margin is the photo's highest logit(p) - logit(t_low)
    over its classes, so 0 is the edge of the class's review band. With a `guard`, a photo
    whose anomaly level reaches it is held whatever the margin: a defect no class knows gives
    the classifier nothing to add to the anomaly term."""

    model_config = ConfigDict(frozen=True)

    weight: float
    threshold: float
    guard: float | None = None


class Reason(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str
    text: str


class PhotoDetail(BaseModel):
    model_config = ConfigDict(frozen=True)

    index: int
    call: PhotoCall
    retake_codes: list[str]
    probs: dict[str, float]
    anomaly: float | None = None
    fused: float | None = None  # the fused rule's score, where one applied
    in_band: bool = False  # some class at or above its review band on this photo


class Verdict(BaseModel):
    model_config = ConfigDict(frozen=True)

    decision: Decision
    reasons: list[Reason]
    defects: list[str]  # defect classes (model or spec) that caused fail or review
    checks: list[str]  # spec checks that caused fail or review
    scores: dict[str, float]  # piece-level score per class: max over usable photos
    photos: list[PhotoDetail]
    anomaly: float | None = None  # the highest anomaly level over usable photos
    # Classes in their review band only on photos the fused rule found normal for the design.
    cleared: list[str] = []


def defect_classes(task: str, classes: Sequence[str]) -> list[str]:
    """The classes of a model whose score can hold a piece: the taxonomy's defects, and in a
    single-label model that has a "good" class every other class (an imported set's own names,
    e.g. "defective"). A single-label model without "good" cannot say which class is a defect:
    only taxonomy classes count."""
    if task == "single_label" and GOOD in classes:
        return [c for c in classes if c != GOOD]
    return [c for c in classes if c in DEFECT_LABELS]


def as_bands(thresholds: Mapping[str, Band | tuple[float, float]]) -> dict[str, Band]:
    """Validate thresholds: 0 <= t_low <= t_high <= 1 for every class, else ValueError."""
    out = {}
    for name, t in thresholds.items():
        band = t if isinstance(t, Band) else Band(t_low=t[0], t_high=t[1])
        lo, hi = band.t_low, band.t_high
        if not (math.isfinite(lo) and math.isfinite(hi) and 0.0 <= lo <= hi <= 1.0):
            raise ValueError(f"class {name!r}: need 0 <= t_low <= t_high <= 1, got ({lo}, {hi})")
        out[name] = band
    return out


def merge_thresholds(
    base: Mapping[str, Band | tuple[float, float]],
    overrides: Mapping[str, Band | tuple[float, float]] | None = None,
) -> dict[str, Band]:
    """The model package's thresholds with per-class overrides (e.g. from settings) on top."""
    merged = as_bands(base)
    for name, band in as_bands(overrides or {}).items():
        if name not in merged:
            raise ValueError(f"override for unknown class {name!r}")
        merged[name] = band
    return merged


def validate_probs(probs: Mapping[str, float], bands: Mapping[str, Band]) -> None:
    for name, p in probs.items():
        if name not in bands:
            raise ValueError(f"score for class {name!r}, which has no threshold")
        if not (isinstance(p, int | float) and math.isfinite(p) and 0.0 <= p <= 1.0):
            raise ValueError(f"class {name!r}: score must be a probability in [0, 1], got {p!r}")


def call_photo(probs: Mapping[str, float], bands: Mapping[str, Band]) -> PhotoCall:
    """One photo's own call: fail if any class reaches t_high, review if any reaches t_low."""
    validate_probs(probs, bands)
    if any(p >= bands[c].t_high for c, p in probs.items()):
        return "fail"
    if any(p >= bands[c].t_low for c, p in probs.items()):
        return "review"
    return "pass"


def _logit(p: float) -> float:
    q = min(max(p, 1e-7), 1 - 1e-7)
    return math.log(q) - math.log1p(-q)


def fused_score(
    probs: Mapping[str, float], bands: Mapping[str, Band], centred: float, w: float
) -> float:
    """margin + w * centred (FusedRule): margin over the classes the photo has scores for."""
    margin = max((_logit(p) - _logit(bands[c].t_low) for c, p in probs.items()), default=-30.0)
    return margin + w * centred


def validate_anomaly(level: float | None, name: str = "anomaly level") -> None:
    if level is None:
        return
    if not (isinstance(level, int | float) and math.isfinite(level) and 0.0 <= level <= 1.0):
        raise ValueError(f"{name} must be in [0, 1], got {level!r}")


def decide(
    photos: Sequence[PhotoInput],
    thresholds: Mapping[str, Band | tuple[float, float]],
    spec_checks: Sequence[CheckResult] = (),
    anomaly_review: float | None = None,
    fused: FusedRule | None = None,
) -> Verdict:
    """The piece's verdict from all its photos (1 to 6) and its spec checks.

    Order of rules: no usable photo -> retake; a failed spec check -> fail; photos that
    disagree (one fails, another clearly passes) -> review; a class at or above t_high -> fail;
    a class in the review band, a borderline spec check, or a usable photo whose anomaly level
    is at or above `anomaly_review` (reason `unusual_surface`) -> review; otherwise pass. The
    anomaly model alone never fails a piece: what it finds has no name, so a person decides.

    With a `fused` rule, on the photos that have an anomaly score, that rule replaces both the
    review band and the anomaly level: the photo goes to review when its fused score reaches
    the rule's threshold (reason: its classes in band, else `unusual_surface`), and a class in
    band on photos the rule finds normal is `cleared` instead. t_high still fails.
    """
    validate_anomaly(anomaly_review, "anomaly_review")
    if not photos:
        raise ValueError("a verdict needs at least one photo")
    if len(photos) > 6:
        raise ValueError(f"at most 6 photos per piece, got {len(photos)}")
    bands = as_bands(thresholds)
    details: list[PhotoDetail] = []
    for i, photo in enumerate(photos):
        probs = dict(photo.probs or {})
        validate_probs(probs, bands)  # bad scores are an error even on an unusable photo
        validate_anomaly(photo.anomaly)
        codes = photo.gate.retake_codes if photo.gate is not None else []
        call: PhotoCall = "unusable" if codes else call_photo(probs, bands)
        score = None
        if fused is not None and photo.anomaly_centred is not None and call != "unusable":
            if not math.isfinite(photo.anomaly_centred):
                raise ValueError(f"anomaly_centred must be finite, got {photo.anomaly_centred}")
            score = fused_score(probs, bands, photo.anomaly_centred, fused.weight)
            if call != "fail":
                guarded = fused.guard is not None and (photo.anomaly or 0.0) >= fused.guard
                call = "review" if score >= fused.threshold or guarded else "pass"
        details.append(
            PhotoDetail(
                index=i,
                call=call,
                retake_codes=codes,
                probs=probs,
                anomaly=photo.anomaly,
                fused=score,
                in_band=any(p >= bands[c].t_low for c, p in probs.items()),
            )
        )
    usable = [d for d in details if d.call != "unusable"]
    if not usable:
        codes = list(dict.fromkeys(c for d in details for c in d.retake_codes))
        reasons = [Reason(code=c, text=retake_message(c, "en")) for c in codes]
        return Verdict(
            decision="retake", reasons=reasons, defects=[], checks=[], scores={}, photos=details
        )

    scores: dict[str, float] = {}
    for d in usable:
        for c, p in d.probs.items():
            scores[c] = max(scores.get(c, 0.0), p)
    failing = sorted(c for c, s in scores.items() if s >= bands[c].t_high)
    band = {c for c, s in scores.items() if bands[c].t_low <= s < bands[c].t_high}
    # A class in band counts on the photos that have no fused score or that the rule holds.
    held = [d for d in usable if d.fused is None or d.call == "review"]
    in_band = sorted(c for c in band if any(d.probs.get(c, 0.0) >= bands[c].t_low for d in held))
    cleared = sorted(band - set(in_band))
    spec_fail = [c for c in spec_checks if c.result == "fail"]
    spec_border = [c for c in spec_checks if c.result == "borderline"]
    calls = {d.call for d in usable}
    levels = [d.anomaly for d in usable if d.anomaly is not None]
    anomaly = max(levels) if levels else None
    unusual = anomaly is not None and anomaly_review is not None and anomaly >= anomaly_review
    fused_held = [d for d in usable if d.fused is not None and d.call == "review"]
    if fused is not None:  # the rule replaces the level: held with no class in band
        unusual = any(not d.in_band for d in fused_held)

    reasons = [_check_reason(c) for c in spec_fail + spec_border]
    if spec_fail:
        decision: Decision = "fail"
    elif "fail" in calls and "pass" in calls:
        decision = "review"
        reasons.append(Reason(code="photos_disagree", text=_disagree_text(usable)))
    elif failing:
        decision = "fail"
    elif in_band or spec_border or unusual:
        decision = "review"
    else:
        decision = "pass"
    reasons += [_class_reason(c, scores[c], "fail") for c in failing]
    reasons += [_class_reason(c, scores[c], "review") for c in in_band]
    if unusual and fused is not None and fused_held:
        top = max(d.fused or 0.0 for d in fused_held)
        reasons.append(_unusual_fused_reason(top, fused.threshold))
    elif unusual and anomaly is not None and anomaly_review is not None:
        reasons.append(_unusual_reason(anomaly, anomaly_review))
    flagged = spec_fail + spec_border
    defects = list(dict.fromkeys([*failing, *in_band, *(c.defect for c in flagged if c.defect)]))
    return Verdict(
        decision=decision,
        reasons=reasons,
        defects=defects if decision != "pass" else [],
        checks=[c.name for c in flagged],
        scores=scores,
        photos=details,
        anomaly=anomaly,
        cleared=cleared if decision == "pass" else [],
    )


def _unusual_fused_reason(score: float, threshold: float) -> Reason:
    return Reason(
        code=UNUSUAL_SURFACE,
        text=f"unusual for this design: fused score {score:.2f} at or above {threshold:.2f}"
        " (the model has no name for it; a person should look)",
    )


def _unusual_reason(level: float, review_from: float) -> Reason:
    return Reason(
        code=UNUSUAL_SURFACE,
        text=f"unusual for this design: anomaly level {level:.3f} at or above {review_from:.3f}"
        " (the model has no name for it; a person should look)",
    )


def _class_reason(name: str, score: float, level: str) -> Reason:
    what = DEFECT_DESCRIPTIONS.get(name, name)
    verb = "above the fail threshold" if level == "fail" else "in the review band"
    return Reason(code=name, text=f"{what}: score {score:.2f} {verb}")


def _check_reason(check: CheckResult) -> Reason:
    return Reason(code=f"{check.name}_{check.result}", text=check.reason)


def _disagree_text(usable: list[PhotoDetail]) -> str:
    fails = [d.index + 1 for d in usable if d.call == "fail"]
    passes = [d.index + 1 for d in usable if d.call == "pass"]
    return f"photos {fails} show a defect but photos {passes} look clean: a person should look"
