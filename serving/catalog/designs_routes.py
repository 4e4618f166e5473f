"""The design catalog, as the app loaded it at start."""

from __future__ import annotations

from fastapi import APIRouter

from qc_model.catalog import Design
from serving.core.auth import CurrentUser
from serving.core.deps import CatalogDep
from serving.core.errors import ApiError
from serving.core.schemas import DesignPublic, DesignsPublic, ErrorPublic

router = APIRouter(prefix="/api/v1/designs", tags=["designs"])


def _public(d: Design) -> DesignPublic:
    return DesignPublic(
        id=d.id,
        name=d.name,
        piece_type=d.piece_type,
        material=d.material,
        pair=d.pair,
        dimensions=[x.model_dump() for x in d.dimensions],
        finish=d.finish.model_dump(),
    )


@router.get("", response_model=DesignsPublic, responses={401: {"model": ErrorPublic}})
def list_designs(_: CurrentUser, catalog: CatalogDep) -> DesignsPublic:
    return DesignsPublic(data=[_public(d) for d in catalog.values()], count=len(catalog))


@router.get("/{design_id}", response_model=DesignPublic, responses={404: {"model": ErrorPublic}})
def read_design(design_id: str, _: CurrentUser, catalog: CatalogDep) -> DesignPublic:
    design = catalog.get(design_id)
    if design is None:
        raise ApiError(404, "not_found", f"no design {design_id!r}")
    return _public(design)
