"""The real `Inspector`: qc_model's photo gate, ONNX inferencer, spec checks and verdict policy.

Per photo: gate (mat, piece, focus, exposure) -> model scores -> spec checks on the photos the
gate accepted; then one verdict for the piece. The model package supplies the classes and the
thresholds (settings may override a class's review band), so no number here drifts silently
from what training calibrated. The mat and the piece are found once, by the gate, and reused by
the model's crop and the spec checks.

A package with a surface branch has photos decoded finer than the gate and the spec checks
need; the request's `DecodePlan` (qc_model.decode_plan, decided once by the intake) says what
those two measure on, and the mat and the piece found there are carried up to the decoded
photo for the model's crops.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from qc_model.catalog import Design
from qc_model.decode import SERVICE_DECODE_LONG_SIDE, DecodedPhoto
from qc_model.decode_plan import DecodePlan, carried_up, plan_decode
from qc_model.errors import DataError
from qc_model.fingerprint import fingerprint_details
from qc_model.gate import GateConfig, GateResult, check_photo
from qc_model.inference import Inferencer, Prediction
from qc_model.messages import UNUSUAL_SURFACE
from qc_model.spec_checks import CheckResult, SpecConfig, run_spec_checks
from qc_model.verdict import Band, PhotoInput, decide, defect_classes, merge_thresholds
from serving.inspection.anomaly_view import (
    AnomalyRule,
    anomaly_details,
    anomaly_heatmap,
    held_by_anomaly,
    score_photos,
)
from serving.inspection.design_check import design_checks, piece_check, with_design_check
from serving.inspection.pipeline import InspectionOutcome, InspectorStatus
from serving.registry.model_store import model_version

# The service already runs one inspection per core at once (KITO_INSPECT_CONCURRENCY), so each
# inspection gets one thread. OpenCV's pool splitting each resize or colour conversion over the
# cores as well cost 8-20 ms more CPU per photo (its idle workers spin) for ~10 ms less latency
# when only one photo is in flight; a second onnxruntime thread cost 1-3 ms more CPU per run
# on a busy machine and saved ~3 ms of latency only on an idle one (docs/BENCHMARKS.md).
SERVICE_THREADS_PER_INSPECTION = 1


class ThresholdOverrideError(DataError):
    """KITO_THRESHOLD_OVERRIDES names a class the model does not score, or a bad band."""


class ModelInspector:
    """Loads the package once; `inspect` is safe to call from several request threads."""

    def __init__(
        self,
        model_dir: Path,
        *,
        threads: int = 2,
        gate: GateConfig | None = None,
        spec: SpecConfig | None = None,
        threshold_overrides: Mapping[str, tuple[float, float]] | None = None,
        measure_floor: int = SERVICE_DECODE_LONG_SIDE,
    ) -> None:
        self.inferencer = Inferencer(model_dir, threads=threads)
        meta = self.inferencer.meta
        self.model_version = model_version(meta)
        # A single-label package also scores "good"; only defect classes can fail a piece.
        defects = defect_classes(meta.task, meta.classes)
        base = {
            name: Band(t_low=t.review_low, t_high=t.review_high)
            for name, t in meta.thresholds.items()
            if name in defects
        }
        # The anomaly model's review level is overridden like a class's band, under the name
        # of its reason: {"unusual_surface": [review_from, 1.0]} (it never fails a piece alone).
        overrides = dict(threshold_overrides or {})
        anomaly_band = overrides.pop(UNUSUAL_SURFACE, None)
        self.anomaly = self.inferencer.package.anomaly
        self.anomaly_rule: AnomalyRule | None = None
        if self.anomaly is not None:
            self.anomaly_rule = AnomalyRule.of(self.anomaly, anomaly_band)
        try:
            self.bands = merge_thresholds(base, overrides)
        except ValueError as exc:
            raise ThresholdOverrideError(
                f"KITO_THRESHOLD_OVERRIDES: {exc}; model {self.model_version} scores"
                f" {', '.join(sorted(base)) or 'no defect classes'}"
            ) from None
        self.overridden = sorted(threshold_overrides or {})
        self.gate_cfg = gate or GateConfig()
        self.spec_cfg = spec or SpecConfig()
        # Photos are decoded at least this fine for the model (inspection.intake; None: any).
        self.min_px_per_mm = self.inferencer.min_px_per_mm
        # The gate and the spec checks measure on at least this long a side (the service's
        # KITO_DECODE_LONG_SIDE), raised for a design's tight tolerances (decode_long_side).
        self.measure_floor = measure_floor

    def decode_plan(self, design: Design) -> DecodePlan:
        """The plan for photos of `design` when the caller brings none (the intake does)."""
        return plan_decode(
            design,
            floor=self.measure_floor,
            model_px_per_mm=self.min_px_per_mm,
            gate=self.gate_cfg,
        )

    def measuring_copy(
        self, image: NDArray[np.uint8], design: Design
    ) -> tuple[NDArray[np.uint8], int]:
        """(the image the gate and spec checks measure on, how many times smaller it is)."""
        return self.decode_plan(design).measuring_copy(image)

    def inspect(
        self, photos: list[DecodedPhoto], design: Design, plan: DecodePlan | None = None
    ) -> InspectionOutcome:
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        if plan is None:
            plan = self.decode_plan(design)
        copies = [plan.measuring_copy(p.image) for p in photos]
        gates = [check_photo(c, design, self.gate_cfg) for c, _ in copies]
        timings["gate"] = _ms(t0)

        t0 = time.perf_counter()
        predictions = self._predict(photos, gates, [f for _, f in copies], design.id)
        timings["model"] = _ms(t0)

        t0 = time.perf_counter()
        factors = [f for _, f in copies]
        anomalies = score_photos(self.anomaly, photos, gates, factors, predictions, design.id)
        if self.anomaly is not None:
            timings["anomaly"] = _ms(t0)

        t0 = time.perf_counter()
        checks: list[CheckResult] = []
        for (copy, _), gate in zip(copies, gates, strict=True):
            if gate.passed:  # measuring a photo the gate refused would only add noise
                checks += run_spec_checks(
                    copy, design, mat=gate.mat, location=gate.location, cfg=self.spec_cfg
                )
        timings["spec"] = _ms(t0)

        t0 = time.perf_counter()
        inputs = [
            PhotoInput(
                gate=g,
                probs={c: p for c, p in pred.probs.items() if c in self.bands},
                anomaly=a.level if a is not None else None,
                anomaly_centred=a.centred if a is not None else None,
            )
            for g, pred, a in zip(gates, predictions, anomalies, strict=True)
        ]
        rule = self.anomaly_rule
        verdict = decide(
            inputs,
            self.bands,
            checks,
            anomaly_review=rule.review if rule is not None else None,
            fused=rule.fused if rule is not None else None,
        )
        identity = self.inferencer.package.identity
        design_check = None
        if identity is not None:
            per_photo = design_checks(identity, predictions, gates, design.id)
            design_check = piece_check(per_photo, identity.ref.threshold)
            verdict = with_design_check(verdict, design_check)
        details: dict[str, Any] = {
            "verdict": verdict.model_dump(mode="json"),
            "gate": [_gate_details(g) for g in gates],
            "spec_checks": [c.model_dump(mode="json") for c in checks],
            "scores": [{c: round(p, 4) for c, p in pred.probs.items()} for pred in predictions],
            "thresholds": {
                "bands": {c: [b.t_low, b.t_high] for c, b in sorted(self.bands.items())},
                "overridden": self.overridden,
                # The level rule's, when it is the rule (details.anomaly.fused otherwise).
                "anomaly_review": rule.review if rule and rule.fused is None else None,
            },
            "heatmaps": [
                anomaly_heatmap(a, held_by_anomaly(a, rule, d), p.size)
                or self._heatmap(pred, p.size)
                for pred, p, a, d in zip(
                    predictions, photos, anomalies, verdict.photos, strict=True
                )
            ],
        }
        if rule is not None:
            details["anomaly"] = anomaly_details(anomalies, rule, verdict.reasons)
        if design_check is not None:
            details["design_check"] = design_check
        timings["verdict"] = _ms(t0)
        t0 = time.perf_counter()
        details["fingerprints"] = fingerprint_details([c for c, _ in copies], gates)
        timings["fingerprint"] = _ms(t0)
        return InspectionOutcome(
            verdict=verdict.decision,
            model_version=self.model_version,
            details=details,
            timings_ms=timings,
        )

    def _predict(
        self,
        photos: list[DecodedPhoto],
        gates: list[GateResult],
        factors: list[int],
        design: str | None = None,
    ) -> list[Prediction]:
        """The model's scores, on the crop around the piece the gate found (not found again;
        carried up to the full photo when the gate measured a copy `factor` times smaller)."""
        prepared, timings = [], []
        for photo, gate, f in zip(photos, gates, factors, strict=True):
            t0 = time.perf_counter()
            loc, mat = carried_up(gate.location, gate.mat, f, photo.image.shape[:2])
            prepared.append(
                self.inferencer.prepare(photo.image, location=loc, mat=mat, design=design)
            )
            timings.append({"preprocess": (time.perf_counter() - t0) * 1e3})
        return self.inferencer.predict_prepared(prepared, timings)

    def _heatmap(self, pred: Prediction, image_size: tuple[int, int]) -> dict[str, Any] | None:
        """The top defect class's heatmap (coarse grid over the crop), kept for the overlay."""
        scored = {c: p for c, p in pred.probs.items() if c in self.bands}
        if not scored:
            return None
        name = max(scored, key=scored.__getitem__)
        grid = pred.heatmap(name)
        return {
            "class": name,
            "score": round(scored[name], 4),
            "crop_box": list(pred.crop_box),
            "image_size": list(image_size),  # the decoded photo the box refers to
            "grid": np.round(grid.astype(np.float64), 3).tolist(),
        }


def _gate_details(gate: GateResult) -> dict[str, Any]:
    return {
        "passed": gate.passed,
        "retake_codes": gate.retake_codes,
        "messages": {"en": gate.messages("en"), "sw": gate.messages("sw")},
        "checks": [c.model_dump(mode="json") for c in gate.checks],
    }


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 2)


def build_inspector(
    model_dir: Path,
    threshold_overrides: Mapping[str, tuple[float, float]] | None = None,
    measure_floor: int | None = None,
) -> ModelInspector:
    """Called by `load_inspector` and the registry's loader for the package in `model_dir`.

    Also sets the process's OpenCV thread pool to SERVICE_THREADS_PER_INSPECTION.
    """
    cv2.setNumThreads(SERVICE_THREADS_PER_INSPECTION)
    return ModelInspector(
        model_dir,
        threads=SERVICE_THREADS_PER_INSPECTION,
        threshold_overrides=threshold_overrides,
        measure_floor=measure_floor or SERVICE_DECODE_LONG_SIDE,
    )


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
    try:
        inspector = build_inspector(model_dir, threshold_overrides)
    except ThresholdOverrideError:
        raise
    except Exception as exc:  # a broken package must not stop the service from starting
        return InspectorStatus(None, f"model package {model_dir} cannot be loaded: {exc}")
    return InspectorStatus(inspector, f"model {inspector.model_version} loaded from {model_dir}")
