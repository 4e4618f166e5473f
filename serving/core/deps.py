"""Request dependencies that read the app's state; tests replace them via dependency_overrides."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from fastapi import Depends, Request

from qc_model.catalog import Design
from qc_model.decode import DecodeBudget
from serving.core.metrics import Metrics
from serving.core.settings import Settings
from serving.inspection.admission import InspectSlots
from serving.inspection.pipeline import Inspector
from serving.orders.workflow import Workflow
from serving.store.storage import ObjectStore


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_store(request: Request) -> ObjectStore:
    return request.app.state.store


def get_catalog(request: Request) -> dict[str, Design]:
    return request.app.state.catalog


def get_inspector(request: Request) -> Inspector | None:
    return request.app.state.inspector_status.inspector


def get_shadow(request: Request) -> Any:
    """The shadow hook for this request (taken once, like the inspector), or None."""
    models = getattr(request.app.state, "models", None)
    shadow = models.shadow if models is not None else None
    if shadow is None:
        return None
    runner = request.app.state.shadow_runner
    return partial(runner.submit, shadow.version, shadow.inspector)


def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


def get_workflow(request: Request) -> Workflow:
    return request.app.state.workflow


def get_cpu_slots(request: Request) -> InspectSlots | None:
    return getattr(request.app.state, "cpu_slots", None)


def get_decode_budget(request: Request) -> DecodeBudget | None:
    return getattr(request.app.state, "decode_budget", None)


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[ObjectStore, Depends(get_store)]
CatalogDep = Annotated[dict[str, Design], Depends(get_catalog)]
InspectorDep = Annotated[Inspector | None, Depends(get_inspector)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
WorkflowDep = Annotated[Workflow, Depends(get_workflow)]
ShadowDep = Annotated[Any, Depends(get_shadow)]
CpuSlotsDep = Annotated[InspectSlots | None, Depends(get_cpu_slots)]
DecodeBudgetDep = Annotated[DecodeBudget | None, Depends(get_decode_budget)]
