"""Reused-photo matches per artisan (admin): every inspection of one artisan that was held
because a photo matched an earlier photo of another piece (reason `photo_reused`,
serving.inspection.fingerprints), newest first, with the earlier photos it matched, whose they
were, and what QC decided. An admin reads it to see whether an artisan's matches are a habit
(many, across orders, mostly confirmed by QC) or an accident (one, approved)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi import Path as PathParam
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from serving.core.auth import AdminUser
from serving.core.errors import ApiError
from serving.core.schemas import DB_INT_MAX, DecisionPublic, ErrorPublic, PhotoPublic
from serving.db.models import Inspection, ReviewItem, User
from serving.db.session import SessionDep
from serving.inspection.fingerprints import REASON
from serving.inspection.routes import to_public
from serving.review.routes import decision_public

router = APIRouter(prefix="/api/v1/users", tags=["integrity"])

_ERRORS: dict[int | str, dict[str, Any]] = {s: {"model": ErrorPublic} for s in (401, 403, 404)}


class EarlierPhotoPublic(BaseModel):
    photo: int = Field(description="which photo of the held inspection matched (0-based)")
    inspection_id: str
    position: int = Field(description="the earlier inspection's photo that it matched")
    piece_id: str
    order_id: str | None
    artisan_id: int | None = Field(description="who sent the earlier photo")
    artisan_name: str | None
    same_artisan: bool | None
    distance_bits: int = Field(description="Hamming distance of the 64-bit hashes")
    created_at: datetime | None
    url: str = Field(description="the earlier photo, for a side-by-side look")


class HeldInspectionPublic(BaseModel):
    inspection_id: str
    review_id: str
    review_status: str = Field(description="open | decided | replaced")
    order_id: str | None
    piece_id: str
    design_id: str
    created_at: datetime
    model_verdict: str = Field(description="what the model said before the match held it")
    photos: list[PhotoPublic]
    matches: list[EarlierPhotoPublic]
    decision: DecisionPublic | None = Field(description="QC's latest decision, if any")


class PhotoMatchesPublic(BaseModel):
    artisan_id: int
    artisan_name: str
    count: int = Field(description="held inspections in all, not just this page")
    open: int = Field(description="of which still waiting for QC")
    rejected: int = Field(description="of which QC rejected (the match was confirmed)")
    data: list[HeldInspectionPublic]


def _earlier(session: Session, matches: list[dict[str, Any]]) -> list[EarlierPhotoPublic]:
    ids = {str(m.get("inspection_id")) for m in matches}
    rows = {
        r.id: r for r in session.scalars(select(Inspection).where(Inspection.id.in_(ids))).all()
    }
    out = []
    for m in matches:
        row = rows.get(str(m.get("inspection_id")))
        position = int(m.get("position", 0))
        out.append(
            EarlierPhotoPublic(
                photo=int(m.get("photo", 0)),
                inspection_id=str(m.get("inspection_id")),
                position=position,
                piece_id=str(m.get("piece_id")),
                order_id=m.get("order_id"),
                artisan_id=row.owner_id if row is not None else None,
                artisan_name=row.owner.name if row is not None else None,
                same_artisan=m.get("same_artisan"),
                distance_bits=int(m.get("distance_bits", 0)),
                created_at=row.created_at if row is not None else None,
                url=f"/api/v1/inspections/{m.get('inspection_id')}/photos/{position}",
            )
        )
    return out


def _held(session: Session, item: ReviewItem) -> HeldInspectionPublic:
    insp = item.inspection
    result = insp.result or {}
    integrity = result.get("integrity") or {}
    decisions = [decision_public(d) for d in item.decisions]
    return HeldInspectionPublic(
        inspection_id=insp.id,
        review_id=item.id,
        review_status=item.status,
        order_id=insp.order_id,
        piece_id=insp.piece_id,
        design_id=insp.design_id,
        created_at=insp.created_at,
        model_verdict=str(result.get("model_verdict") or item.model_verdict),
        photos=to_public(insp).photos,
        matches=_earlier(session, list(integrity.get("matches") or [])),
        decision=decisions[-1] if decisions else None,
    )


@router.get("/{user_id}/photo-matches", response_model=PhotoMatchesPublic, responses=_ERRORS)
def list_photo_matches(
    _: AdminUser,
    session: SessionDep,
    user_id: Annotated[int, PathParam(ge=1, le=DB_INT_MAX)],
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=DB_INT_MAX)] = 0,
) -> PhotoMatchesPublic:
    """The artisan's inspections held as reused photos, newest first, each with the earlier
    photos it matched and QC's decision."""
    artisan = session.get(User, user_id)
    if artisan is None or artisan.role != "artisan":
        raise ApiError(404, "not_found", f"no artisan with id {user_id}", "user_id")
    mine = (ReviewItem.artisan_id == user_id, ReviewItem.reason == REASON)
    by_status = dict(
        session.execute(
            select(ReviewItem.status, func.count()).where(*mine).group_by(ReviewItem.status)
        ).all()
    )
    items = session.scalars(
        select(ReviewItem)
        .where(*mine)
        .order_by(ReviewItem.created_at.desc(), ReviewItem.id)
        .limit(limit)
        .offset(offset)
    ).all()
    rejected = 0
    for item in session.scalars(select(ReviewItem).where(*mine, ReviewItem.status == "decided")):
        if item.decisions and item.decisions[-1].decision == "reject":
            rejected += 1
    return PhotoMatchesPublic(
        artisan_id=artisan.id,
        artisan_name=artisan.name,
        count=sum(by_status.values()),
        open=by_status.get("open", 0),
        rejected=rejected,
        data=[_held(session, item) for item in items],
    )
