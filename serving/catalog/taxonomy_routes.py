"""The defect taxonomy, for clients that label photos (the QC page's label picker)."""

from __future__ import annotations

from fastapi import APIRouter

from qc_model.taxonomy import DEFECT_DESCRIPTIONS, SPEC_DEFECTS, TAXONOMY_VERSION, VISUAL_DEFECTS
from serving.core.auth import CurrentUser
from serving.core.schemas import DefectLabelPublic, ErrorPublic, TaxonomyPublic

router = APIRouter(prefix="/api/v1/taxonomy", tags=["taxonomy"])


@router.get("", response_model=TaxonomyPublic, responses={401: {"model": ErrorPublic}})
def read_taxonomy(_: CurrentUser) -> TaxonomyPublic:
    defects = [
        DefectLabelPublic(name=name, kind=kind, description=DEFECT_DESCRIPTIONS[name])
        for kind, names in (("visual", VISUAL_DEFECTS), ("spec", SPEC_DEFECTS))
        for name in names
    ]
    return TaxonomyPublic(version=TAXONOMY_VERSION, defects=defects)
