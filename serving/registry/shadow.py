"""Shadow scoring: the registry's shadow model judges each inspection after the champion.

It runs in one background thread, on the photos the champion saw, after the inspection is
committed; its answer is stored in `shadow_results` beside the inspection and is never read by
the verdict, the review queue or payouts. When the thread falls behind, new jobs are dropped
(and counted) rather than queued without bound: the shadow must not slow the live service.
`shadow_report` compares the two where they disagree.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from qc_model.catalog import Design
from qc_model.decode import DecodedPhoto
from serving.db.models import Inspection, ShadowResult
from serving.inspection.pipeline import InspectionOutcome, Inspector

log = logging.getLogger("kito.serving")


@dataclass(frozen=True)
class ShadowJob:
    version: str
    inspector: Inspector
    inspection_id: str
    photos: list[DecodedPhoto]
    design: Design
    champion: InspectionOutcome


def flagged(outcome_details: Any) -> list[str]:
    """The defects a verdict named (the verdict policy's `defects`), or none."""
    verdict = (outcome_details or {}).get("verdict") or {}
    return [str(d) for d in verdict.get("defects") or []]


class ShadowRunner:
    def __init__(self, sessions: sessionmaker[Session], max_pending: int = 32) -> None:
        self._sessions = sessions
        self._queue: queue.Queue[ShadowJob | None] = queue.Queue(max_pending)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.dropped = 0

    def submit(
        self,
        version: str,
        inspector: Inspector,
        inspection: Inspection,
        photos: list[DecodedPhoto],
        design: Design,
        champion: InspectionOutcome,
    ) -> bool:
        """Queue one inspection for the shadow; False (and counted) if the queue is full."""
        self._ensure_thread()
        job = ShadowJob(version, inspector, inspection.id, photos, design, champion)
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            self.dropped += 1
            return False
        return True

    def drain(self, timeout: float = 60.0) -> bool:
        """Wait until every queued job is stored (tests, shutdown); False on timeout."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None

    def _ensure_thread(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="kito-shadow", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                self._score(job)
            except Exception:  # one failed job must not stop the shadow
                log.exception("shadow scoring failed")
            finally:
                self._queue.task_done()

    def _score(self, job: ShadowJob) -> None:
        t0 = time.perf_counter()
        verdict, defects, scores, error = None, [], [], None
        try:
            out = job.inspector.inspect(job.photos, job.design)
            verdict, defects = out.verdict, flagged(out.details)
            scores = list(out.details.get("scores") or [])
        except Exception as exc:  # the shadow's failure is recorded, never raised
            error = f"{type(exc).__name__}: {exc}"[:500]
        row = ShadowResult(
            inspection_id=job.inspection_id,
            model_version=job.version,
            champion_version=job.champion.model_version,
            champion_verdict=job.champion.verdict,
            verdict=verdict,
            champion_defects=flagged(job.champion.details),
            defects=defects,
            scores=scores,
            error=error,
            elapsed_ms=round((time.perf_counter() - t0) * 1000, 2),
        )
        with self._sessions() as session:
            session.add(row)
            try:
                session.commit()
            except IntegrityError:  # scored already (an idempotent replay); keep the first
                session.rollback()


def shadow_report(session: Session, version: str, limit: int = 20) -> dict[str, Any]:
    """Agreement of the champion and the shadow `version` over the inspections both judged."""
    rows = session.scalars(
        select(ShadowResult)
        .where(ShadowResult.model_version == version)
        .order_by(ShadowResult.created_at.desc(), ShadowResult.id.desc())
    ).all()
    scored = [r for r in rows if r.error is None]
    verdicts: Counter[tuple[str, str]] = Counter(
        (r.champion_verdict, r.verdict or "-") for r in scored
    )
    per_class: dict[str, Counter[str]] = {}
    for r in scored:
        mine, theirs = set(r.champion_defects), set(r.defects)
        for name in mine | theirs:
            side = "both" if name in mine and name in theirs else "champion_only"
            side = "shadow_only" if name not in mine else side
            per_class.setdefault(name, Counter())[side] += 1
    agreed = sum(n for (a, b), n in verdicts.items() if a == b)
    disagreements = [r for r in scored if r.champion_verdict != r.verdict][:limit]
    ids = [r.inspection_id for r in disagreements]
    found = session.execute(
        select(Inspection.id, Inspection.design_id).where(Inspection.id.in_(ids))
    ).all()
    designs = {i: d for i, d in found}
    return {
        "version": version,
        "champion_versions": sorted({r.champion_version for r in rows}),
        "inspections": len(rows),
        "errors": len(rows) - len(scored),
        "agreed": agreed,
        "agreement_rate": agreed / len(scored) if scored else None,
        "verdicts": [
            {"champion": a, "shadow": b, "count": n} for (a, b), n in sorted(verdicts.items())
        ],
        "per_class": {
            name: {k: c.get(k, 0) for k in ("both", "champion_only", "shadow_only")}
            for name, c in sorted(per_class.items())
        },
        "mean_ms": (sum(r.elapsed_ms for r in scored) / len(scored)) if scored else None,
        "disagreements": [
            {
                "inspection_id": r.inspection_id,
                "design_id": designs.get(r.inspection_id),
                "champion": r.champion_verdict,
                "shadow": r.verdict,
                "champion_defects": r.champion_defects,
                "shadow_defects": r.defects,
                "at": r.created_at.isoformat(),
            }
            for r in disagreements
        ],
    }
