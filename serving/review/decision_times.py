"""How long QC staff take per review item: the time the desk measured from showing the item to
the decision (`review_ms`, sent with the decision, kept in its audit entry), summarised."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from serving.db.models import AuditEntry

WINDOW = timedelta(days=7)


def _quantile(sorted_values: list[float], q: float) -> float:
    """The q-quantile by linear interpolation between closest ranks (numpy's default)."""
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def decision_times(session: Session, now: datetime | None = None) -> dict[str, Any]:
    """Median and 90th percentile seconds per first decision over the last 7 days; corrections
    and decisions made without the desk (no measured time) are left out."""
    now = now or datetime.now(UTC)
    details = session.scalars(
        select(AuditEntry.detail).where(
            AuditEntry.action == "review.decide", AuditEntry.at >= now - WINDOW
        )
    ).all()
    ms = sorted(
        float(d["review_ms"])
        for d in details
        if isinstance(d, dict) and isinstance(d.get("review_ms"), int | float)
    )
    if not ms:
        return {"measured": 0, "median_s": None, "p90_s": None, "window_days": WINDOW.days}
    return {
        "measured": len(ms),
        "median_s": round(_quantile(ms, 0.5) / 1000, 1),
        "p90_s": round(_quantile(ms, 0.9) / 1000, 1),
        "window_days": WINDOW.days,
    }
