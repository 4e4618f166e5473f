"""The promotion gate: may a challenger replace the champion? A pure function of their scores.

Both models are scored by the same code on the same photos: the frozen holdout and the newly
reviewed batch (the part of it held out from training). The challenger passes only if, on the
holdout, it loses at most `max_drop` (0.5 points) of macro-F1 and of "any defect" recall at its
operating thresholds, and on the reviewed batch it does better than the champion.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

MAX_DROP = 0.005  # 0.5 points on the 0..1 scale
_EPS = 1e-9  # float noise: a loss of exactly 0.5 points is "not more than" 0.5 points


@dataclass(frozen=True)
class Scores:
    """One model on one set of photos, at the model's own operating thresholds."""

    photos: int
    macro_f1: float  # NaN when no class in the set has a positive photo
    any_recall: float  # defective photos held; NaN without defective photos
    agreement: float  # photos whose held / not-held decision matches the label; NaN if none


@dataclass(frozen=True)
class Check:
    name: str
    champion: float
    challenger: float
    passed: bool
    rule: str

    @property
    def delta(self) -> float:
        return self.challenger - self.champion


@dataclass(frozen=True)
class GateResult:
    passed: bool
    checks: list[Check]
    reasons: list[str] = field(default_factory=list)  # one line per failed check

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "reasons": self.reasons,
            "checks": [
                {**asdict(c), "delta": None if math.isnan(c.delta) else c.delta}
                for c in self.checks
            ],
        }


def points(x: float) -> str:
    """A 0..1 score in points (percent) as the gate's messages write it; n/a when unmeasured."""
    return "n/a" if math.isnan(x) else f"{100 * x:.1f}"


def _no_worse(name: str, champ: float, chal: float, max_drop: float) -> Check:
    rule = f"may lose at most {points(max_drop)} points"
    if math.isnan(champ) or math.isnan(chal):
        return Check(name, champ, chal, False, "cannot be measured on the holdout")
    return Check(name, champ, chal, chal >= champ - max_drop - _EPS, rule)


def _improves(champ: Scores, chal: Scores) -> Check:
    """Macro-F1 higher; on a tie (small batches tie often), decision agreement higher. A batch
    without any defective photo has no macro-F1: agreement alone decides."""
    if chal.photos == 0 or champ.photos == 0:
        return Check("reviewed macro-F1", math.nan, math.nan, False, "no reviewed photos held out")
    if not (math.isnan(champ.macro_f1) or math.isnan(chal.macro_f1)):
        if abs(chal.macro_f1 - champ.macro_f1) > _EPS:
            rule = "must improve"
            return Check(
                "reviewed macro-F1",
                champ.macro_f1,
                chal.macro_f1,
                chal.macro_f1 > champ.macro_f1,
                rule,
            )
        rule = "macro-F1 tied: agreement with QC must improve"
    else:
        rule = "no defective photos: agreement with QC must improve"
    ok = chal.agreement > champ.agreement + _EPS
    return Check("reviewed agreement", champ.agreement, chal.agreement, ok, rule)


def promotion_gate(
    champion_holdout: Scores,
    challenger_holdout: Scores,
    champion_reviewed: Scores,
    challenger_reviewed: Scores,
    max_drop: float = MAX_DROP,
) -> GateResult:
    checks = [
        _no_worse(
            "holdout macro-F1", champion_holdout.macro_f1, challenger_holdout.macro_f1, max_drop
        ),
        _no_worse(
            "holdout any-defect recall",
            champion_holdout.any_recall,
            challenger_holdout.any_recall,
            max_drop,
        ),
        _improves(champion_reviewed, challenger_reviewed),
    ]
    reasons = [
        f"{c.name}: champion {points(c.champion)}, challenger {points(c.challenger)} ({c.rule})"
        for c in checks
        if not c.passed
    ]
    return GateResult(passed=not reasons, checks=checks, reasons=reasons)
