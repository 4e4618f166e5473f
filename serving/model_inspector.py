"""The real `Inspector`: qc_model's photo gate, ONNX inferencer, spec checks and verdict policy.

Per photo: gate (mat, piece, focus, exposure) -> model scores -> spec checks on the photos the
gate accepted; then one verdict for the piece. The model package supplies the classes and the
thresholds, so no number here can drift from what training calibrated.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from qc_model.catalog import Design
from qc_model.decode import DecodedPhoto
from qc_model.gate import GateConfig, GateResult, check_photo
from qc_model.inference import Inferencer
from qc_model.spec_checks import CheckResult, SpecConfig, run_spec_checks
from qc_model.taxonomy import DEFECT_LABELS
from qc_model.verdict import Band, PhotoInput, decide
from serving.pipeline import InspectionOutcome


class ModelInspector:
    """Loads the package once; `inspect` is safe to call from several request threads."""

    def __init__(
        self,
        model_dir: Path,
        *,
        threads: int = 2,
        gate: GateConfig | None = None,
        spec: SpecConfig | None = None,
    ) -> None:
        self.inferencer = Inferencer(model_dir, threads=threads)
        meta = self.inferencer.meta
        self.model_version = f"{meta.name}@{meta.version}"[:64]
        # A single-label package also scores "good"; only defect classes can fail a piece.
        self.bands = {
            name: Band(t_low=t.review_low, t_high=t.review_high)
            for name, t in meta.thresholds.items()
            if name in DEFECT_LABELS
        }
        self.gate_cfg = gate or GateConfig()
        self.spec_cfg = spec or SpecConfig()

    def inspect(self, photos: list[DecodedPhoto], design: Design) -> InspectionOutcome:
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        gates = [check_photo(p.image, design, self.gate_cfg) for p in photos]
        timings["gate"] = _ms(t0)

        t0 = time.perf_counter()
        predictions = self.inferencer.predict([p.image for p in photos])
        timings["inference"] = _ms(t0)

        t0 = time.perf_counter()
        checks: list[CheckResult] = []
        for photo, gate in zip(photos, gates, strict=True):
            if gate.passed:  # measuring a photo the gate refused would only add noise
                checks += run_spec_checks(
                    photo.image, design, mat=gate.mat, location=gate.location, cfg=self.spec_cfg
                )
        timings["spec_checks"] = _ms(t0)

        inputs = [
            PhotoInput(gate=g, probs={c: p for c, p in pred.probs.items() if c in self.bands})
            for g, pred in zip(gates, predictions, strict=True)
        ]
        verdict = decide(inputs, self.bands, checks)
        details: dict[str, Any] = {
            "verdict": verdict.model_dump(mode="json"),
            "gate": [_gate_details(g) for g in gates],
            "spec_checks": [c.model_dump(mode="json") for c in checks],
        }
        return InspectionOutcome(
            verdict=verdict.decision,
            model_version=self.model_version,
            details=details,
            timings_ms=timings,
        )


def _gate_details(gate: GateResult) -> dict[str, Any]:
    return {
        "passed": gate.passed,
        "retake_codes": gate.retake_codes,
        "messages": {"en": gate.messages("en"), "sw": gate.messages("sw")},
        "checks": [c.model_dump(mode="json") for c in gate.checks],
    }


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 2)


def build_inspector(model_dir: Path) -> ModelInspector:
    """Called by `serving.pipeline.load_inspector` for the package in `model_dir`."""
    return ModelInspector(model_dir)
