"""The seam between the service and the model: an `Inspector` turns decoded photos into an outcome.

The service only knows this protocol. `load_inspector` builds the real one
(`serving.inspection.model_inspector`: qc_model's photo gate, ONNX inferencer, spec checks and
verdict policy) from a model package; without a usable package it reports why, /readyz says
"not ready" with that reason, and uploads are stored with status "received" for a later run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from qc_model.catalog import Design
from qc_model.decode import DecodedPhoto
from qc_model.decode_plan import DecodePlan
from qc_model.errors import DataError

VERDICTS = ("pass", "fail", "review", "retake")


@dataclass(frozen=True)
class InspectionOutcome:
    verdict: str  # one of VERDICTS
    model_version: str
    # JSON-serialisable details for people and the review queue: defect scores, measurements,
    # gate reasons. Stored as is with the inspection.
    details: Mapping[str, Any] = field(default_factory=dict)
    # Per-stage milliseconds measured inside the inspector (gate, inference, spec checks, ...).
    timings_ms: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")


class Inspector(Protocol):
    model_version: str
    # The least px/mm the model reads photos at (a package's surface branch); None: any scale.
    # The request's DecodePlan is decided from it and the design (intake.decode_plan_for).
    min_px_per_mm: float | None

    def inspect(
        self, photos: list[DecodedPhoto], design: Design, plan: DecodePlan | None = None
    ) -> InspectionOutcome:
        """Judge 1..6 photos of one piece against its design, decoded by `plan` (None: by the
        plan this inspector makes for the design itself). Pure with respect to the service: no
        I/O but reading the model; raises `qc_model.errors.DataError` for unusable input."""
        ...


@dataclass(frozen=True)
class InspectorStatus:
    inspector: Inspector | None
    reason: str  # why there is none, or what was loaded


def load_inspector(
    model_dir: Path, threshold_overrides: Mapping[str, tuple[float, float]] | None = None
) -> InspectorStatus:
    """The inspector for the model package in `model_dir`, or `None` with the reason.

    Threshold overrides naming a class the model does not score stop the start (a
    `DataError`): serving with a misspelt override would silently use the package's band.
    """
    if not model_dir.is_dir():
        if threshold_overrides:
            raise DataError(
                f"KITO_THRESHOLD_OVERRIDES is set but there is no model package at {model_dir}"
            )
        return InspectorStatus(None, f"model package not found: {model_dir}")
    from serving.inspection.model_inspector import ThresholdOverrideError, build_inspector

    try:
        inspector = build_inspector(model_dir, threshold_overrides)
    except ThresholdOverrideError:
        raise
    except Exception as exc:  # a broken package must not stop the service from starting
        return InspectorStatus(None, f"model package {model_dir} cannot be loaded: {exc}")
    return InspectorStatus(inspector, f"model {inspector.model_version} loaded from {model_dir}")
