"""The declared design, checked: a piece whose photos look more like another design than the
one declared goes to review with reason `design_mismatch`, naming the likely design
(qc_model.identity; the package's design references and threshold).

Only photos the gate passed count (the others are retakes). The piece's ratio is the median of
its photos' ratios, so one odd photo of several does not decide alone. A fail or a retake stays
as it is (the check is kept in the details); a pass or a review becomes a review.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from qc_model.gate import GateResult
from qc_model.identity import REASON, DesignCheck, DesignReferences, piece_size_mm
from qc_model.inference import Prediction
from qc_model.messages import INTEGRITY_MESSAGES
from qc_model.verdict import Reason, Verdict
from serving.db.models import Inspection


def design_checks(
    refs: DesignReferences | None,
    predictions: Sequence[Prediction],
    gates: Sequence[GateResult],
    declared: str,
) -> list[DesignCheck | None]:
    """Per photo: its check, or None (no references for the design, a photo the gate refused,
    no embedding or no size on the mat)."""
    if refs is None or not refs.covers(declared):
        return [None] * len(gates)
    out: list[DesignCheck | None] = []
    for pred, gate in zip(predictions, gates, strict=True):
        if not gate.passed or pred.embedding is None:
            out.append(None)
            continue
        out.append(refs.check(pred.embedding, piece_size_mm(gate.location, gate.mat), declared))
    return out


def piece_check(checks: Sequence[DesignCheck | None], threshold: float) -> dict[str, Any] | None:
    """The piece's call from its photos' checks (None: no photo was checked)."""
    done = [c for c in checks if c is not None]
    if not done:
        return None
    ratio = float(np.median([c.ratio for c in done]))
    likely = Counter(c.nearest for c in done).most_common(1)[0][0]
    flagged = ratio > threshold
    out: dict[str, Any] = {
        "declared": done[0].declared,
        "ratio": round(ratio, 4),
        "threshold": round(threshold, 4),
        "likely_design": likely,
        "flagged": flagged,
        "photos": [c.as_json() if c is not None else None for c in checks],
    }
    if flagged:
        message = INTEGRITY_MESSAGES[REASON]
        out["reason"] = REASON
        out["messages"] = {"en": message.en, "sw": message.sw}
    return out


def with_design_check(verdict: Verdict, check: dict[str, Any] | None) -> Verdict:
    """A pass or review becomes a review with reason `design_mismatch` when the check flags."""
    if check is None or not check["flagged"] or verdict.decision not in ("pass", "review"):
        return verdict
    text = (
        f"{INTEGRITY_MESSAGES[REASON].en} (declared {check['declared']}, looks like "
        f"{check['likely_design']})"
    )
    reasons = [Reason(code=REASON, text=text), *verdict.reasons]
    return verdict.model_copy(update={"decision": "review", "reasons": reasons})


def attach_example(session: Session, row: Inspection) -> None:
    """On a flagged inspection, name the latest photo of the likely design that the model
    passed (`design_check.example`), for QC to see beside this one; nothing when none."""
    result = row.result or {}
    check = result.get("design_check")
    if not isinstance(check, dict) or not check.get("flagged"):
        return
    found = session.execute(
        select(Inspection.id, Inspection.piece_id)
        .where(
            Inspection.design_id == check.get("likely_design"),
            Inspection.verdict == "pass",
            Inspection.id != row.id,
        )
        .order_by(Inspection.created_at.desc())
        .limit(1)
    ).first()
    if found is None:
        return
    example = {"inspection_id": found.id, "position": 0, "piece_id": found.piece_id}
    row.result = {**result, "design_check": {**check, "example": example}}
