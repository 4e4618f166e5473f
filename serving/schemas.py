"""API schemas: XPublic for one item, XsPublic(data, count) for a page of them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


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
