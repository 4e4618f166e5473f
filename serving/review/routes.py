"""The QC review queue (qc, admin): list by priority, read one, decide, correct, metrics."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from qc_model.taxonomy import DEFECT_LABELS
from serving.core.auth import StaffUser
from serving.core.deps import WorkflowDep
from serving.core.errors import ApiError
from serving.core.schemas import (
    DB_INT_MAX,
    DecisionCreate,
    DecisionPublic,
    ErrorPublic,
    QueueMetricsPublic,
    ReviewItemPublic,
    ReviewItemsPublic,
)
from serving.db.models import OrderPiece, ReviewDecision, ReviewItem
from serving.db.session import SessionDep
from serving.inspection.routes import to_public
from serving.review.decision_times import decision_times
from serving.review.review_queue import add_decision, current_priority, model_labels, queue_metrics

router = APIRouter(prefix="/api/v1/reviews", tags=["reviews"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"model": ErrorPublic} for s in (401, 403, 404, 409, 422)
}


def decision_public(d: ReviewDecision) -> DecisionPublic:
    return DecisionPublic(
        id=d.id,
        review_id=d.review_id,
        decision=d.decision,
        labels=list(d.labels),
        note=d.note,
        decided_by=d.decided_by,
        decided_by_name=d.decider.name,
        decided_at=d.decided_at,
        corrects=d.corrects,
    )


def _payouts(session: Session, items: Sequence[ReviewItem]) -> dict[tuple[str, str], int]:
    order_ids = {i.order_id for i in items if i.order_id is not None}
    if not order_ids:
        return {}
    rows = session.execute(
        select(OrderPiece.order_id, OrderPiece.piece_id, OrderPiece.payout_minor).where(
            OrderPiece.order_id.in_(order_ids)
        )
    ).all()
    return {(o, p): amount for o, p, amount in rows}


def item_public(item: ReviewItem, payouts: dict[tuple[str, str], int]) -> ReviewItemPublic:
    history = [decision_public(d) for d in item.decisions]
    result = item.inspection.result or {}
    return ReviewItemPublic(
        id=item.id,
        reason=item.reason,
        priority=current_priority(item, datetime.now(UTC)),
        status=item.status,
        created_at=item.created_at,
        inspection=to_public(item.inspection),
        order_id=item.order_id,
        piece_id=item.piece_id,
        design_id=item.design_id,
        artisan_id=item.artisan_id,
        artisan_name=item.artisan.name,
        payout_minor=payouts.get((item.order_id, item.piece_id)) if item.order_id else None,
        model_labels=model_labels(result),
        decision=history[-1] if history else None,
        history=history,
    )


def _item(session: Session, review_id: str) -> ReviewItem:
    item = session.get(ReviewItem, review_id)
    if item is None:
        raise ApiError(404, "not_found", "no such review item")
    return item


@router.get("", response_model=ReviewItemsPublic, responses=_ERRORS)
def list_reviews(
    _: StaffUser,
    session: SessionDep,
    status: Annotated[
        Literal["open", "decided", "replaced"] | None,
        Query(description="default: open (the queue); replaced: closed by a newer inspection"),
    ] = "open",
    design_id: str | None = None,
    artisan_id: Annotated[int | None, Query(ge=1, le=DB_INT_MAX)] = None,
    reason: Literal["fail", "review", "audit", "photo_reused"] | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=DB_INT_MAX)] = 0,
) -> ReviewItemsPublic:
    """Highest priority first (see serving.review.review_queue for the formula)."""
    conds = []
    for column, v in (
        (ReviewItem.status, status),
        (ReviewItem.design_id, design_id),
        (ReviewItem.artisan_id, artisan_id),
        (ReviewItem.reason, reason),
    ):
        if v is not None:
            conds.append(column == v)
    count = session.scalar(select(func.count()).select_from(ReviewItem).where(*conds)) or 0
    rows = session.scalars(
        select(ReviewItem)
        .where(*conds)
        .order_by(ReviewItem.sort_key.desc(), ReviewItem.created_at, ReviewItem.id)
        .limit(limit)
        .offset(offset)
    ).all()
    payouts = _payouts(session, rows)
    return ReviewItemsPublic(data=[item_public(r, payouts) for r in rows], count=count)


@router.get("/metrics", response_model=QueueMetricsPublic, responses=_ERRORS)
def read_metrics(_: StaffUser, session: SessionDep) -> QueueMetricsPublic:
    metrics = queue_metrics(session) | {"decision_time": decision_times(session)}
    return QueueMetricsPublic.model_validate(metrics)


@router.get("/{review_id}", response_model=ReviewItemPublic, responses=_ERRORS)
def read_review(review_id: str, _: StaffUser, session: SessionDep) -> ReviewItemPublic:
    item = _item(session, review_id)
    return item_public(item, _payouts(session, [item]))


def _decide(
    review_id: str,
    body: DecisionCreate,
    user: StaffUser,
    session: Session,
    workflow: WorkflowDep,
    *,
    correction: bool,
) -> DecisionPublic:
    for i, label in enumerate(body.labels):
        if label not in DEFECT_LABELS:
            raise ApiError(
                422,
                "unknown_label",
                f"{label!r} is not a defect label; known: {', '.join(DEFECT_LABELS)}",
                f"labels.{i}",
            )
    note = (body.note or "").strip() or None
    if body.decision == "reject" and not body.labels and note is None:
        # A rejection the artisan cannot read a reason in, and retraining cannot learn from.
        raise ApiError(
            422,
            "label_required",
            "a rejection needs at least one defect label, or a note saying what is wrong "
            "(a defect the taxonomy has no label for)",
            "labels",
        )
    item = _item(session, review_id)
    workflow.before_decision(session, item)  # the order's lock, before anything is decided
    row = add_decision(
        session,
        item,
        actor=user,
        decision=body.decision,
        labels=list(dict.fromkeys(body.labels)),
        note=note,
        correction=correction,
        review_ms=body.review_ms,
    )
    # The piece's state (and perhaps the order's payout) changes in the decision's transaction.
    workflow.after_decision(session, item, user)
    session.commit()
    return decision_public(row)


@router.post(
    "/{review_id}/decision", status_code=201, response_model=DecisionPublic, responses=_ERRORS
)
def decide(
    review_id: str,
    body: DecisionCreate,
    user: StaffUser,
    session: SessionDep,
    workflow: WorkflowDep,
) -> DecisionPublic:
    """Approve or reject, with the defect labels actually present. The first decision wins;
    a second one gets 409 `already_decided`. Decisions are immutable: use a correction."""
    return _decide(review_id, body, user, session, workflow, correction=False)


@router.post(
    "/{review_id}/corrections", status_code=201, response_model=DecisionPublic, responses=_ERRORS
)
def correct(
    review_id: str,
    body: DecisionCreate,
    user: StaffUser,
    session: SessionDep,
    workflow: WorkflowDep,
) -> DecisionPublic:
    """A new decision linked (`corrects`) to the one in force; it wins from now on, for labels
    and for the piece's state, unless the order is paid already (payouts are final)."""
    return _decide(review_id, body, user, session, workflow, correction=True)
