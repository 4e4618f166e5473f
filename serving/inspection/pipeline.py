"""The seam between the service and the model: an `Inspector` turns decoded photos into an outcome.

The service only knows this protocol. `serving.inspection.model_inspector.load_inspector` builds
the real one (qc_model's photo gate, ONNX inferencer, spec checks and verdict policy) from a model
package; without a usable package it reports why, /readyz says "not ready" with that reason, and
uploads are stored with status "received" for a later run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from qc_model.catalog import Design
from qc_model.decode import DecodedPhoto
from qc_model.decode_plan import DecodePlan

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
    # The request's DecodePlan is decided from it and the design (submission.decode_plan_for).
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
