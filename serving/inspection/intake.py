"""Upload intake: validate, decode, store photos, run the inspector, record the inspection.

Order matters for consistency: photos are written first (content-addressed, atomic), then the
inspection row and its photo rows in one transaction. A failure in between leaves at most an
orphan photo file (harmless, findable by hash), never a row without its photos; an upload that
loses a race (409) deletes the files it created, and the sweep (serving.store.orphans) the rest.
An upload to an order is recorded under the order's lock, after checking it is not paid.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from qc_model.catalog import Design
from qc_model.decode import MB, DecodeBudget, DecodedPhoto, DecodeError, DecodeLimits, decode_photo
from qc_model.decode_plan import DecodePlan
from qc_model.errors import DataError
from serving.core.errors import ApiError
from serving.core.metrics import Metrics
from serving.db.models import Inspection, Order, Photo, User
from serving.inspection.admission import InspectSlots
from serving.inspection.pipeline import InspectionOutcome, Inspector
from serving.inspection.submission import Submission, UploadedPhoto, decode_plan_for
from serving.orders.order_lock import lock_order
from serving.orders.payouts import existing_payout
from serving.orders.workflow import Workflow
from serving.store.orphans import IN_FLIGHT, discard_unclaimed
from serving.store.storage import ObjectStore

log = logging.getLogger("kito.serving")
T = TypeVar("T")
AfterCommit = Callable[[Inspection, list[DecodedPhoto], Design, InspectionOutcome], Any]


@dataclass
class Intake:
    """Everything an upload needs, gathered by the router from the app's state."""

    session: Session
    store: ObjectStore
    catalog: dict[str, Design]
    inspector: Inspector | None
    limits: DecodeLimits
    metrics: Metrics
    # Decoding and inspecting are CPU-bound: more of them at once than there are cores only
    # makes each slower (measured in docs/BENCHMARKS.md), so requests queue for a slot here,
    # in a bounded queue (serving.inspection.admission).
    cpu_slots: InspectSlots | None = None
    # Review queue, piece states and payouts (serving.orders.workflow); None: inspections only.
    workflow: Workflow | None = None
    # Called after the inspection is committed with its decoded photos and the champion's
    # outcome: the shadow model scores it (serving.registry.shadow). Never affects the verdict.
    after_commit: AfterCommit | None = None
    # Decoded pixels: the process's peak (`DecodeBudget`) and what one upload may keep.
    decode_budget: DecodeBudget | None = None
    request_decode_bytes: int | None = None
    # Stage milliseconds of the last `submit`, with the database write ("db") that the stored
    # row cannot hold; the router sends them as a Server-Timing header.
    last_timings: dict[str, float] = field(default_factory=dict)

    def submit(self, owner: User, sub: Submission) -> tuple[Inspection, bool]:
        """The inspection for `sub` and whether it was created now (False: an idempotent replay)."""
        request_hash = sub.content_hash()
        if sub.idempotency_key is not None:
            replay = self._replay(owner, sub.idempotency_key, request_hash)
            if replay is not None:
                return replay, False
        design = self.catalog.get(sub.design_id)
        if design is None:
            raise ApiError(422, "unknown_design", f"no design {sub.design_id!r}", "design_id")
        if sub.order_id is not None:
            self._check_order(owner, sub)
        keys = [p.sha256 for p in sub.photos]
        lost: ApiError | None = None
        earlier: Inspection | None = None
        with IN_FLIGHT.hold(keys):
            existed = {k for k in keys if self.store.exists(k)}
            row, decoded, outcome = self._process(owner, sub, design, request_hash)
            row_timings = dict(row.timings_ms)
            t0 = time.perf_counter()
            try:
                earlier = self._record(owner, sub, row, request_hash)
            except ApiError as exc:
                if exc.status != 409:
                    raise
                lost = exc
        if lost is not None or earlier is not None:
            # This upload lost to a payout or to another request with its key: the photos it
            # stored are nobody's (unless in the store before or held by another upload).
            discard_unclaimed(self.session, self.store, keys, existed_before=existed)
            if lost is not None:
                raise lost
            assert earlier is not None
            return earlier, False
        self.metrics.stage.labels("record").observe(time.perf_counter() - t0)
        self.last_timings = {**row_timings, "db": round((time.perf_counter() - t0) * 1000, 2)}
        if outcome is not None:
            self.metrics.verdicts.labels(design.id, outcome.model_version, outcome.verdict).inc()
            if self.after_commit is not None:
                try:
                    self.after_commit(row, decoded, design, outcome)
                except Exception:  # the shadow must never fail an upload
                    log.exception("after-commit hook failed")
        return row, True

    def _process(
        self, owner: User, sub: Submission, design: Design, request_hash: str
    ) -> tuple[Inspection, list[DecodedPhoto], InspectionOutcome | None]:
        """Decode, store and inspect the photos; the inspection row, not added yet."""
        start = time.perf_counter()
        timings: dict[str, float] = {}
        slots = self.cpu_slots
        if slots is not None:
            self._timed(timings, "queue", slots.acquire)
        try:
            plan = decode_plan_for(self.limits, design, self.inspector)
            limits = plan.limits(self.limits)
            decoded = self._timed(timings, "decode", lambda: self._decode(sub.photos, limits))
            self._timed(
                timings, "store", lambda: [self.store.put(p.data, p.sha256) for p in sub.photos]
            )
            outcome, error = self._timed(
                timings, "inspect", lambda: self._inspect(decoded, design, plan)
            )
        finally:
            if slots is not None:
                slots.release()
        timings["total"] = round((time.perf_counter() - start) * 1000, 2)
        row = self._row(owner, sub, request_hash, decoded, outcome, error, timings)
        return row, decoded, outcome

    def _record(
        self, owner: User, sub: Submission, row: Inspection, request_hash: str
    ) -> Inspection | None:
        """Commit `row` with its queue item, piece state and payout; None if committed, else
        the earlier inspection that won the race for this Idempotency-Key. An upload to an
        order decides under the order's lock: a payout committed first makes it 409."""
        try:
            if sub.order_id is not None:
                order = lock_order(self.session, sub.order_id)
                if existing_payout(self.session, order.id) is not None:
                    raise ApiError(
                        409, "order_paid", f"order {order.id} is paid; it takes no more photos"
                    )
            self.session.add(row)
            self.session.flush()
            if self.workflow is not None:
                # Queue, piece state and payout change in the inspection's own transaction.
                self.workflow.after_inspection(self.session, row, owner)
            self.session.commit()
        except ApiError:
            self.session.rollback()
            raise
        except IntegrityError:
            # Another request with the same idempotency key won the race; answer as it did.
            self.session.rollback()
            if sub.idempotency_key is None:
                raise
            earlier = self._replay(owner, sub.idempotency_key, request_hash)
            if earlier is None:
                raise
            return earlier
        return None

    def _replay(self, owner: User, key: str, request_hash: str) -> Inspection | None:
        stmt = select(Inspection).where(
            Inspection.owner_id == owner.id, Inspection.idempotency_key == key
        )
        earlier = self.session.scalars(stmt).first()
        if earlier is not None and earlier.request_hash != request_hash:
            raise ApiError(
                409,
                "idempotency_conflict",
                "this Idempotency-Key was already used for a different request",
                "Idempotency-Key",
            )
        return earlier

    def _check_order(self, owner: User, sub: Submission) -> None:
        order = self.session.get(Order, sub.order_id)
        # Another artisan's order is answered like a missing one: nothing about it leaks.
        if order is None or (owner.role != "admin" and order.artisan_id != owner.id):
            raise ApiError(422, "unknown_order", f"you have no order {sub.order_id!r}", "order_id")
        piece = next((p for p in order.pieces if p.piece_id == sub.piece_id), None)
        if piece is None:
            raise ApiError(
                422,
                "unknown_piece",
                f"order {order.id} has no piece {sub.piece_id!r}",
                "piece_id",
            )
        if piece.design_id != sub.design_id:
            raise ApiError(
                422,
                "wrong_design",
                f"piece {piece.piece_id} of order {order.id} is design {piece.design_id},"
                f" not {sub.design_id}",
                "design_id",
            )
        if order.payout is not None:
            raise ApiError(409, "order_paid", f"order {order.id} is paid; it takes no more photos")

    def _timed(self, timings: dict[str, float], stage: str, fn: Callable[[], T]) -> T:
        t0 = time.perf_counter()
        try:
            return fn()
        finally:
            elapsed = time.perf_counter() - t0
            timings[stage] = round(elapsed * 1000, 2)
            self.metrics.stage.labels(stage).observe(elapsed)

    def _decode(self, photos: list[UploadedPhoto], limits: DecodeLimits) -> list[DecodedPhoto]:
        out = []
        kept = 0
        for i, p in enumerate(photos):
            try:
                photo = decode_photo(
                    p.data,
                    filename=p.filename,
                    content_type=p.content_type,
                    limits=limits,
                    budget=self.decode_budget,
                    sha256=p.sha256,
                )
            except DecodeError as exc:
                self.metrics.refused.labels(exc.code).inc()
                raise ApiError(exc.status, exc.code, exc.message, f"photos.{i}") from None
            kept += photo.image.nbytes
            if self.request_decode_bytes is not None and kept > self.request_decode_bytes:
                self.metrics.refused.labels("decode_budget").inc()
                raise ApiError(
                    413,
                    "decode_budget",
                    f"the photos decode to more than {self.request_decode_bytes / MB:,.0f} MB"
                    f" (at photo {i + 1}); send fewer or smaller photos",
                    f"photos.{i}",
                )
            out.append(photo)
        return out

    def _inspect(
        self, decoded: list[DecodedPhoto], design: Design, plan: DecodePlan
    ) -> tuple[InspectionOutcome | None, str | None]:
        if self.inspector is None:
            return None, None
        try:
            return self.inspector.inspect(decoded, design, plan), None
        except DataError as exc:
            return None, str(exc)[:500]
        except Exception as exc:
            # Keep the upload (photos and row) so the piece can be re-inspected after a fix.
            log.exception("inspector failed on design %s", design.id)
            return None, f"inspector error: {type(exc).__name__}"

    @staticmethod
    def _row(
        owner: User,
        sub: Submission,
        request_hash: str,
        decoded: list[DecodedPhoto],
        outcome: InspectionOutcome | None,
        error: str | None,
        timings: dict[str, float],
    ) -> Inspection:
        if outcome is not None:
            status = "inspected"
            timings = {**timings, **{f"model.{k}": v for k, v in outcome.timings_ms.items()}}
        else:
            status = "failed" if error else "received"
        return Inspection(
            owner_id=owner.id,
            design_id=sub.design_id,
            piece_id=sub.piece_id,
            order_id=sub.order_id,
            status=status,
            verdict=outcome.verdict if outcome else None,
            model_version=outcome.model_version if outcome else None,
            result=_jsonable(dict(outcome.details)) if outcome else {},
            timings_ms=timings,
            error=error,
            idempotency_key=sub.idempotency_key,
            request_hash=request_hash,
            photos=[
                Photo(
                    position=i,
                    sha256=d.sha256,
                    media_type=d.media_type,
                    byte_size=d.byte_size,
                    width=d.original_size[0],
                    height=d.original_size[1],
                    filename=p.filename,
                )
                for i, (p, d) in enumerate(zip(sub.photos, decoded, strict=True))
            ],
        )


def _jsonable(value: Any) -> Any:
    """Plain JSON for the result column: numpy scalars become numbers, NaN/inf become null
    (PostgreSQL's JSON refuses NaN, and it means "not measured" here anyway)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool | str) or value is None:
        return value
    if isinstance(value, int | float | np.integer | np.floating):
        number = value.item() if isinstance(value, np.generic) else value
        return number if math.isfinite(number) else None
    return str(value)
