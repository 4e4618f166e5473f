"""API schemas: XPublic for one item, XsPublic(data, count) for a page of them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from serving.core.currencies import ISO_4217

# User ids are 32-bit integer columns; a larger number in a query or body would otherwise
# reach the database as an overflow error instead of a 422 naming the field.
DB_INT_MAX = 2**31 - 1
UserId = Annotated[int, Field(ge=1, le=DB_INT_MAX)]
# In request bodies: a JSON integer, never "3", 3.0, 1e3 or true coerced into one.
StrictUserId = Annotated[int, Field(strict=True, ge=1, le=DB_INT_MAX)]


def no_control_chars(text: str | None) -> str | None:
    """Names, ids and labels are one line of text: no control characters at all (NUL would
    be stored by SQLite and refused by PostgreSQL; the answer must not depend on the database)."""
    if text is not None and any(ord(c) < 32 or 127 <= ord(c) < 160 for c in text):
        raise ValueError("must not contain control characters")
    return text


def _printable(text: str | None) -> str | None:
    # Tabs and line breaks are part of a note; other control characters (NUL, which
    # PostgreSQL refuses in text, escape sequences) are not.
    if text is not None and any(
        (ord(c) < 32 and c not in "\t\n\r") or 127 <= ord(c) < 160 for c in text
    ):
        raise ValueError("must not contain control characters other than tab and line breaks")
    return text


def _currency(code: str) -> str:
    if code not in ISO_4217:
        raise ValueError(f"{code!r} is not an ISO 4217 currency code")
    return code


OneLine = Annotated[str, AfterValidator(no_control_chars)]
Note = Annotated[str | None, AfterValidator(_printable)]


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorPublic(BaseModel):
    error: ErrorDetail


class PhotoPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    position: int
    sha256: str
    media_type: str
    byte_size: int
    width: int
    height: int
    filename: str | None
    url: str = ""


class InspectionPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    owner_id: int
    design_id: str
    piece_id: str
    order_id: str | None
    status: str = Field(description="received | inspected | failed")
    verdict: str | None = Field(description="pass | fail | review | retake, once inspected")
    model_version: str | None
    result: dict[str, Any]
    timings_ms: dict[str, Any]
    error: str | None
    created_at: datetime
    photos: list[PhotoPublic]


class InspectionsPublic(BaseModel):
    data: list[InspectionPublic]
    count: int = Field(description="total matching the filters, not just this page")


class DesignPublic(BaseModel):
    id: str
    name: str
    piece_type: str
    material: str
    pair: bool
    dimensions: list[dict[str, Any]]
    finish: dict[str, Any]


class DesignsPublic(BaseModel):
    data: list[DesignPublic]
    count: int


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    role: str


class UserDetail(UserPublic):
    active: bool
    created_at: datetime


class UsersPublic(BaseModel):
    data: list[UserDetail]
    count: int


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[OneLine, Field(min_length=1, max_length=120)]
    role: Literal["artisan", "qc", "admin"]


class UserCreated(UserDetail):
    token: str  # shown once; only its hash is stored


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    active: bool


# -- orders and payouts ---------------------------------------------------------------------
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
MAX_PIECES = 500


class OrderPieceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    piece_id: str = Field(pattern=ID_PATTERN)
    design_id: OneLine = Field(min_length=1, max_length=40)
    payout_minor: int = Field(
        strict=True, ge=1, le=10**12, description="integer minor units (cents), a JSON integer"
    )


class OrderCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, pattern=ID_PATTERN, description="client id, optional")
    artisan_id: StrictUserId
    currency: Annotated[str, AfterValidator(_currency)] = Field(
        default="KES", pattern=r"^[A-Z]{3}$", description="ISO 4217 code in circulation"
    )
    pieces: list[OrderPieceCreate] = Field(min_length=1, max_length=MAX_PIECES)


class OrderPiecePublic(BaseModel):
    piece_id: str
    design_id: str
    design_name: str | None
    payout_minor: int
    state: str = Field(description="pending | accepted | rejected")
    reason: str | None = Field(description="why the piece is held; null when accepted")
    latest_inspection_id: str | None
    latest_verdict: str | None


class PayoutPublic(BaseModel):
    id: str
    amount_minor: int
    currency: str
    status: str = Field(description="pending | delivered")
    attempts: int
    created_at: datetime
    delivered_at: datetime | None
    last_error: str | None = None
    next_attempt_at: datetime | None = None


class OrderPublic(BaseModel):
    id: str
    artisan_id: int
    artisan_name: str
    currency: str
    status: str = Field(description="open | paid")
    total_minor: int
    accepted_minor: int
    pending_minor: int = Field(description="total of the pieces not accepted yet")
    paid_minor: int = Field(description="the payout's amount once paid, else 0")
    created_at: datetime
    pieces: list[OrderPiecePublic]
    payout: PayoutPublic | None


class OrdersPublic(BaseModel):
    data: list[OrderPublic]
    count: int


# -- review queue ---------------------------------------------------------------------------
class DecisionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject"]
    labels: list[OneLine] = Field(default_factory=list, max_length=20)
    note: Note = Field(default=None, max_length=2000)
    review_ms: int | None = Field(
        default=None,
        ge=0,
        le=86_400_000,
        description="how long the reviewer looked at the item before deciding, as the desk "
        "measured it (time the page was hidden left out); feeds /reviews/metrics",
    )


class DecisionPublic(BaseModel):
    id: str
    review_id: str
    decision: str
    labels: list[str]
    note: str | None
    decided_by: int
    decided_by_name: str
    decided_at: datetime
    corrects: str | None


class ReviewItemPublic(BaseModel):
    id: str
    reason: str = Field(description="fail | review | audit | photo_reused")
    priority: float
    status: str = Field(
        description="open | decided | replaced (a newer inspection of the piece replaced it)"
    )
    created_at: datetime
    inspection: InspectionPublic
    order_id: str | None
    piece_id: str
    design_id: str
    artisan_id: int
    artisan_name: str
    payout_minor: int | None
    model_labels: list[str]
    decision: DecisionPublic | None = Field(description="the decision in force (corrections win)")
    history: list[DecisionPublic] = Field(description="every decision, oldest first")


class ReviewItemsPublic(BaseModel):
    data: list[ReviewItemPublic]
    count: int


class AgreementPublic(BaseModel):
    decided: int
    agreed: int
    rate: float | None


class AuditSamplePublic(BaseModel):
    decided: int
    escapes: int = Field(description="audited passes that QC rejected")
    escape_rate: float | None


class DecisionTimePublic(BaseModel):
    measured: int = Field(description="first decisions with a measured time, last window_days")
    median_s: float | None
    p90_s: float | None
    window_days: int


class QueueMetricsPublic(BaseModel):
    open: int
    oldest_open_age_s: float | None
    decisions_last_hour: int
    agreement: AgreementPublic
    audit: AuditSamplePublic
    decision_time: DecisionTimePublic


# -- audit log ------------------------------------------------------------------------------
class AuditEntryPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor_id: int | None
    action: str
    entity_type: str
    entity_id: str
    detail: dict[str, Any]


class AuditLogPublic(BaseModel):
    data: list[AuditEntryPublic]
    count: int


class DefectLabelPublic(BaseModel):
    name: str
    kind: str = Field(description="visual (seen by the model) | spec (found by measuring)")
    description: str


class TaxonomyPublic(BaseModel):
    version: str
    defects: list[DefectLabelPublic]


# -- model registry ---------------------------------------------------------------------------
class ModelPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True, protected_namespaces=())

    version: str
    state: str = Field(description="candidate | shadow | champion | retired")
    sha256: str = Field(description="model.onnx in the object store")
    meta_sha256: str
    checkpoint_sha256: str | None
    parent_version: str | None
    taxonomy_version: str
    dataset_versions: dict[str, Any]
    training: dict[str, Any]
    git_commit: str | None
    metrics: dict[str, Any]
    refusal_reason: str | None
    refused_at: datetime | None
    promoted_by: str | None
    promoted_at: datetime | None
    built_at: datetime
    created_at: datetime


class ModelsPublic(BaseModel):
    data: list[ModelPublic]
    count: int


class PromoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    force: bool = Field(False, description="promote even though the promotion gate failed")
    note: Note = Field(None, max_length=2000, description="why (required with force)")


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: Annotated[str | None, AfterValidator(no_control_chars)] = Field(
        None, max_length=64, description="a retired champion (default: previous)"
    )
    reason: Note = Field(None, max_length=2000)
