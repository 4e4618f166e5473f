"""Orders: QC/admin create them, artisans follow theirs, QC releases the payout."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, object_session

from qc_model.catalog import Design
from serving.core.audit import record
from serving.core.auth import CurrentUser, StaffUser
from serving.core.deps import CatalogDep
from serving.core.errors import ApiError
from serving.core.schemas import (
    DB_INT_MAX,
    ErrorPublic,
    OrderCreate,
    OrderPiecePublic,
    OrderPublic,
    OrdersPublic,
    PayoutPublic,
)
from serving.db.models import Inspection, Order, OrderPiece, Payout, User
from serving.db.session import SessionDep
from serving.orders.payouts import release

router = APIRouter(prefix="/api/v1/orders", tags=["orders"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"model": ErrorPublic} for s in (401, 403, 404, 409, 422)
}


def payout_public(payout: Payout) -> PayoutPublic:
    box = payout.outbox
    return PayoutPublic(
        id=payout.id,
        amount_minor=payout.amount_minor,
        currency=payout.currency,
        status="delivered" if box.delivered_at is not None else "pending",
        attempts=box.attempts,
        created_at=payout.created_at,
        delivered_at=box.delivered_at,
        last_error=box.last_error,
        next_attempt_at=None if box.delivered_at is not None else box.next_attempt_at,
    )


def order_public(
    order: Order, catalog: dict[str, Design], viewer: User | None = None
) -> OrderPublic:
    """`viewer` an artisan: each piece's latest inspection is the latest of their own (an
    admin's upload of their piece must not point them at an inspection they cannot open)."""
    pieces = []
    for p in order.pieces:
        latest = p.latest_inspection
        foreign = latest is not None and viewer is not None and latest.owner_id != viewer.id
        if foreign and viewer is not None and viewer.role == "artisan":
            latest = _own_latest(order, p.piece_id, viewer.id)
        pieces.append(
            OrderPiecePublic(
                piece_id=p.piece_id,
                design_id=p.design_id,
                design_name=d.name if (d := catalog.get(p.design_id)) else None,
                payout_minor=p.payout_minor,
                state=p.state,
                reason=p.reason,
                latest_inspection_id=latest.id if latest is not None else None,
                latest_verdict=latest.verdict if latest is not None else None,
            )
        )
    total = sum(p.payout_minor for p in pieces)
    accepted = sum(p.payout_minor for p in pieces if p.state == "accepted")
    return OrderPublic(
        id=order.id,
        artisan_id=order.artisan_id,
        artisan_name=order.artisan.name,
        currency=order.currency,
        status="paid" if order.payout is not None else "open",
        total_minor=total,
        accepted_minor=accepted,
        pending_minor=total - accepted,
        paid_minor=order.payout.amount_minor if order.payout is not None else 0,
        created_at=order.created_at,
        pieces=pieces,
        payout=payout_public(order.payout) if order.payout is not None else None,
    )


def _own_latest(order: Order, piece_id: str, owner_id: int) -> Inspection | None:
    session = object_session(order)
    if session is None:
        return None
    return session.scalars(
        select(Inspection)
        .where(
            Inspection.order_id == order.id,
            Inspection.piece_id == piece_id,
            Inspection.owner_id == owner_id,
        )
        .order_by(Inspection.created_at.desc(), Inspection.id.desc())
        .limit(1)
    ).first()


def _load(session: Session, order_id: str) -> Order | None:
    return session.scalars(
        select(Order).where(Order.id == order_id).execution_options(populate_existing=True)
    ).first()


def _visible(user: User, order: Order | None) -> Order:
    # An artisan learns nothing about other artisans' orders, not even that they exist.
    if order is None or (user.role == "artisan" and order.artisan_id != user.id):
        raise ApiError(404, "not_found", "no such order")
    return order


@router.post("", status_code=201, response_model=OrderPublic, responses=_ERRORS)
def create_order(
    body: OrderCreate, user: StaffUser, session: SessionDep, catalog: CatalogDep
) -> OrderPublic:
    """Create an order of pieces for one artisan (qc, admin). Each piece starts pending."""
    artisan = session.get(User, body.artisan_id)
    if artisan is None or artisan.role != "artisan" or not artisan.active:
        raise ApiError(
            422, "not_an_artisan", f"user {body.artisan_id} is not an active artisan", "artisan_id"
        )
    seen: set[str] = set()
    for i, p in enumerate(body.pieces):
        if p.design_id not in catalog:
            field = f"pieces.{i}.design_id"
            raise ApiError(422, "unknown_design", f"no design {p.design_id!r}", field)
        if p.piece_id in seen:
            field = f"pieces.{i}.piece_id"
            raise ApiError(422, "duplicate_piece", f"piece {p.piece_id!r} is listed twice", field)
        seen.add(p.piece_id)
    order_id = body.id or f"ORD-{uuid.uuid4().hex[:12].upper()}"
    if session.get(Order, order_id) is not None:
        raise _exists(order_id)
    order = Order(
        id=order_id,
        artisan_id=artisan.id,
        currency=body.currency,
        created_by=user.id,
        pieces=[
            OrderPiece(
                position=i,
                piece_id=p.piece_id,
                design_id=p.design_id,
                payout_minor=p.payout_minor,
                state="pending",
                reason="no photo submitted yet",
            )
            for i, p in enumerate(body.pieces)
        ],
    )
    session.add(order)
    record(
        session,
        actor=user,
        action="order.create",
        entity_type="order",
        entity_id=order_id,
        artisan_id=artisan.id,
        currency=body.currency,
        pieces=[p.model_dump() for p in body.pieces],
    )
    try:
        session.commit()
    except IntegrityError:
        session.rollback()  # created by someone else between the check and the commit
        raise _exists(order_id) from None
    return order_public(_visible(user, _load(session, order_id)), catalog, user)


def _exists(order_id: str) -> ApiError:
    return ApiError(409, "order_exists", f"order {order_id!r} already exists", "id")


@router.get("", response_model=OrdersPublic, responses=_ERRORS)
def list_orders(
    user: CurrentUser,
    session: SessionDep,
    catalog: CatalogDep,
    artisan_id: Annotated[
        int | None, Query(ge=1, le=DB_INT_MAX, description="qc/admin only")
    ] = None,
    status: Literal["open", "paid"] | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=DB_INT_MAX)] = 0,
) -> OrdersPublic:
    """Newest first. Artisans see only their own; `count` is the total over all pages."""
    conds = []
    if user.role == "artisan":
        if artisan_id is not None and artisan_id != user.id:
            raise ApiError(403, "forbidden", "artisans see only their own orders", "artisan_id")
        conds.append(Order.artisan_id == user.id)
    elif artisan_id is not None:
        conds.append(Order.artisan_id == artisan_id)
    if status is not None:
        paid = Order.payout.has()
        conds.append(paid if status == "paid" else ~paid)
    count = session.scalar(select(func.count()).select_from(Order).where(*conds)) or 0
    rows = session.scalars(
        select(Order)
        .where(*conds)
        .order_by(Order.created_at.desc(), Order.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return OrdersPublic(data=[order_public(o, catalog, user) for o in rows], count=count)


@router.get("/{order_id}", response_model=OrderPublic, responses=_ERRORS)
def read_order(
    order_id: str, user: CurrentUser, session: SessionDep, catalog: CatalogDep
) -> OrderPublic:
    return order_public(_visible(user, session.get(Order, order_id)), catalog, user)


@router.post("/{order_id}/release", response_model=OrderPublic, responses=_ERRORS)
def release_order(
    order_id: str, user: StaffUser, session: SessionDep, catalog: CatalogDep
) -> OrderPublic:
    """Create the order's payout if every piece is accepted (qc, admin). Idempotent: every
    call answers with the same payout; 409 `not_ready` names the pieces that hold it."""
    order = _visible(user, session.get(Order, order_id))
    release(session, order, actor=user)
    return order_public(_visible(user, _load(session, order_id)), catalog, user)
