"""Inspections: upload photos of one piece, read one, list with filters, download a photo."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Header, Query, Request, Response, UploadFile
from fastapi.responses import StreamingResponse
from sqlalchemy import func, select

from qc_model.decode import MB, MEDIA_TYPES
from qc_model.errors import DataError
from serving.core.auth import CurrentUser
from serving.core.deps import (
    CatalogDep,
    CpuSlotsDep,
    DecodeBudgetDep,
    InspectorDep,
    MetricsDep,
    SettingsDep,
    ShadowDep,
    StoreDep,
    WorkflowDep,
)
from serving.core.errors import ApiError
from serving.core.schemas import (
    DB_INT_MAX,
    ID_PATTERN,
    ErrorPublic,
    InspectionPublic,
    InspectionsPublic,
)
from serving.db.models import Inspection, User
from serving.db.session import SessionDep
from serving.inspection.heatmap import render_heatmap
from serving.inspection.intake import Intake
from serving.inspection.submission import Submission, UploadedPhoto
from serving.store.stores import photo_stream

router = APIRouter(prefix="/api/v1/inspections", tags=["inspections"])

IDEM_PATTERN = r"^[\x21-\x7e]{1,128}$"  # printable ASCII, no spaces
_ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"model": ErrorPublic} for s in (401, 403, 404, 409, 413, 422)
}


async def single_valued_fields(request: Request) -> None:
    """A form field given twice is refused: which value counts would be the parser's choice,
    and a client that sends two design ids does not know which piece it is photographing."""
    form = await request.form()  # parsed once; FastAPI reads the same cached form
    for name in ("design_id", "piece_id", "order_id"):
        if (n := len(form.getlist(name))) > 1:
            raise ApiError(422, "duplicate_field", f"{name} is given {n} times; send it once", name)


def to_public(row: Inspection) -> InspectionPublic:
    public = InspectionPublic.model_validate(row)
    for p in public.photos:
        p.url = f"/api/v1/inspections/{row.id}/photos/{p.position}"
    return public


def _visible(user: User, row: Inspection | None) -> Inspection:
    # An artisan learns nothing about other artisans' inspections, not even that they exist.
    if row is None or (user.role == "artisan" and row.owner_id != user.id):
        raise ApiError(404, "not_found", "no such inspection")
    return row


@router.post(
    "",
    status_code=201,
    response_model=InspectionPublic,
    responses=_ERRORS,
    dependencies=[Depends(single_valued_fields)],
)
def create_inspection(
    response: Response,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    store: StoreDep,
    catalog: CatalogDep,
    inspector: InspectorDep,
    metrics: MetricsDep,
    cpu_slots: CpuSlotsDep,
    decode_budget: DecodeBudgetDep,
    workflow: WorkflowDep,
    shadow: ShadowDep,
    photos: Annotated[list[UploadFile], File(description="1 to 6 photos of one piece")],
    design_id: Annotated[str, Form(max_length=40)],
    piece_id: Annotated[str, Form(pattern=ID_PATTERN)],
    order_id: Annotated[str | None, Form(pattern=ID_PATTERN)] = None,
    idempotency_key: Annotated[str | None, Header(pattern=IDEM_PATTERN)] = None,
) -> InspectionPublic:
    """Upload photos of one piece for inspection. Artisans only submit as themselves.

    A retry with the same `Idempotency-Key` returns the first answer (200) and stores nothing
    twice; the same key with a different request is refused (409).
    """
    if user.role not in {"artisan", "admin"}:
        raise ApiError(403, "forbidden", "only artisans (or admins) submit inspections")
    if len(photos) > settings.max_photos:
        raise ApiError(422, "too_many_photos", f"at most {settings.max_photos} photos", "photos")
    # Read at most one byte past the limit: enough to know a file is too large.
    uploaded = [
        UploadedPhoto(f.file.read(settings.max_photo_bytes + 1), f.filename, f.content_type)
        for f in photos
    ]
    sub = Submission(design_id, piece_id, order_id, uploaded, idempotency_key)
    intake = Intake(
        session,
        store,
        catalog,
        inspector,
        settings.decode_limits,
        metrics,
        cpu_slots,
        workflow,
        after_commit=shadow,
        decode_budget=decode_budget,
        request_decode_bytes=settings.request_decode_budget_mb * MB,
    )
    row, created = intake.submit(user, sub)
    if not created:
        response.status_code = 200
    response.headers["Location"] = f"/api/v1/inspections/{row.id}"
    if intake.last_timings:
        response.headers["Server-Timing"] = ", ".join(
            f"{name.replace('.', '-')};dur={ms}" for name, ms in intake.last_timings.items()
        )
    return to_public(row)


@router.get("/{inspection_id}", response_model=InspectionPublic, responses=_ERRORS)
def read_inspection(inspection_id: str, user: CurrentUser, session: SessionDep) -> InspectionPublic:
    return to_public(_visible(user, session.get(Inspection, inspection_id)))


@router.get("", response_model=InspectionsPublic, responses=_ERRORS)
def list_inspections(
    user: CurrentUser,
    session: SessionDep,
    design_id: str | None = None,
    piece_id: str | None = None,
    verdict: str | None = None,
    status: str | None = None,
    artisan_id: Annotated[
        int | None, Query(ge=1, le=DB_INT_MAX, description="qc/admin only")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=DB_INT_MAX)] = 0,
) -> InspectionsPublic:
    """Newest first. Artisans see only their own; `count` is the total over all pages."""
    conds = []
    if user.role == "artisan":
        if artisan_id is not None and artisan_id != user.id:
            raise ApiError(
                403, "forbidden", "artisans see only their own inspections", "artisan_id"
            )
        conds.append(Inspection.owner_id == user.id)
    elif artisan_id is not None:
        conds.append(Inspection.owner_id == artisan_id)
    for column, value in (
        (Inspection.design_id, design_id),
        (Inspection.piece_id, piece_id),
        (Inspection.verdict, verdict),
        (Inspection.status, status),
    ):
        if value is not None:
            conds.append(column == value)
    count = session.scalar(select(func.count()).select_from(Inspection).where(*conds)) or 0
    rows = session.scalars(
        select(Inspection)
        .where(*conds)
        .order_by(Inspection.created_at.desc(), Inspection.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return InspectionsPublic(data=[to_public(r) for r in rows], count=count)


@router.get(
    "/{inspection_id}/photos/{position}",
    response_class=Response,
    responses={200: {"content": {t: {} for t in MEDIA_TYPES.values()}}, **_ERRORS},
)
def download_photo(
    inspection_id: str, position: int, user: CurrentUser, session: SessionDep, store: StoreDep
) -> Response:
    """The photo exactly as uploaded."""
    row = _visible(user, session.get(Inspection, inspection_id))
    photo = next((p for p in row.photos if p.position == position), None)
    if photo is None:
        raise ApiError(404, "not_found", f"inspection has no photo {position}")
    try:
        size, chunks = photo_stream(store, photo.sha256)
    except KeyError:
        raise ApiError(404, "not_found", "photo file is missing from the store") from None
    return StreamingResponse(
        chunks,
        media_type=photo.media_type,
        headers={
            "Cache-Control": "private, max-age=86400",
            "ETag": f'"{photo.sha256}"',
            "Content-Length": str(size),
        },
    )


@router.get(
    "/{inspection_id}/photos/{position}/heatmap",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, **_ERRORS},
)
def download_heatmap(
    inspection_id: str,
    position: int,
    user: CurrentUser,
    session: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
) -> Response:
    """PNG: the model's heatmap for the photo's top defect class over the crop the model saw."""
    row = _visible(user, session.get(Inspection, inspection_id))
    photo = next((p for p in row.photos if p.position == position), None)
    if photo is None:
        raise ApiError(404, "not_found", f"inspection has no photo {position}")
    heatmaps = (row.result or {}).get("heatmaps") or []
    entry = heatmaps[position] if position < len(heatmaps) else None
    if not entry:
        raise ApiError(404, "no_heatmap", "this photo has not been scored by a model")
    try:
        data = store.get(photo.sha256)
    except KeyError:
        raise ApiError(404, "not_found", "photo file is missing from the store") from None
    try:
        png = render_heatmap(data, entry, settings.decode_limits)
    except (ValueError, KeyError, TypeError, DataError) as exc:
        raise ApiError(422, "bad_heatmap", f"stored heatmap cannot be drawn: {exc}") from None
    return Response(
        png,
        media_type="image/png",
        headers={"Cache-Control": "private, max-age=86400", "X-Heatmap-Class": entry["class"]},
    )
