"""An inspector for the browser tests whose results have the real inspector's shape.

The verdict, reasons and retake messages are made by qc_model's own gate and verdict code
(`decide`, `GateResult.messages`) from scripted gate checks and scores, so the pages are tested
against the JSON that `serving.inspection.model_inspector` stores, without loading a model.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qc_model.catalog import Design
from qc_model.decode import DecodedPhoto
from qc_model.decode_plan import DecodePlan
from qc_model.gate import GateCheck, GateResult
from qc_model.spec_checks import CheckResult, judge
from qc_model.taxonomy import VISUAL_DEFECTS
from qc_model.verdict import Band, PhotoInput, decide
from serving.inspection.design_check import with_design_check
from serving.inspection.pipeline import InspectionOutcome

BANDS = {name: Band(t_low=0.3, t_high=0.8) for name in VISUAL_DEFECTS}
# Top class score per verdict: below, inside and above the review band.
TOP_SCORE = {"pass": 0.05, "review": 0.55, "fail": 0.92}
TOP_CLASS = "scratch"


def _gate(retake_code: str | None) -> GateResult:
    checks = [
        GateCheck(name="markers", measured=6, limit=2, kind="min", passed=True, code="no_mat"),
        GateCheck(
            name="sharpness",
            measured=0.05 if retake_code == "blurry" else 0.4,
            limit=0.135,
            kind="min",
            passed=retake_code != "blurry",
            code="blurry",
        ),
    ]
    return GateResult(checks=checks)


def _spec(design: Design, off_mm: float | None) -> list[CheckResult]:
    """The design's first size check, judged by qc_model's own rule; `off_mm` from nominal
    (default: a quarter of the tolerance, a pass)."""
    dim = design.dimensions[0]
    off = dim.tolerance_mm / 4 if off_mm is None else off_mm
    margin = 0.15 * dim.tolerance_mm
    return [
        judge(
            f"size_{dim.measure}",
            dim.nominal_mm + off,
            dim.nominal_mm,
            dim.tolerance_mm,
            margin,
            "mm",
            "wrong_size",
            dim.tolerance_mm + max(margin, 0.02 * dim.nominal_mm),
        )
    ]


def _heatmap(size: tuple[int, int], score: float) -> dict[str, Any]:
    w, h = size
    side = min(w, h) // 2
    x0, y0 = (w - side) // 2, (h - side) // 2
    yy, xx = np.mgrid[0:7, 0:7]
    grid = np.exp(-((xx - 4) ** 2 + (yy - 2) ** 2) / 4.0)
    return {
        "class": TOP_CLASS,
        "score": score,
        "crop_box": [x0, y0, x0 + side, y0 + side],
        "image_size": [w, h],
        "grid": np.round(grid, 3).tolist(),
    }


class ScriptedInspector:
    """Tests set `verdict` (pass, review, fail, retake); `calls` records what it was given."""

    model_version = "scripted-1"
    min_px_per_mm: float | None = None  # a surface branch's scale; tests may set one

    def __init__(self) -> None:
        self.verdict = "pass"
        self.size_off_mm: float | None = None  # the size check's error; None: a pass
        self.calls: list[tuple[list[DecodedPhoto], Design]] = []
        # Each photo's fingerprint (qc_model.fingerprint), when a test scripts one.
        self.fingerprint: dict[str, Any] | None = None
        # The design check's piece call (serving.inspection.design_check), when scripted.
        self.design_check: dict[str, Any] | None = None

    def inspect(
        self, photos: list[DecodedPhoto], design: Design, plan: DecodePlan | None = None
    ) -> InspectionOutcome:
        self.calls.append((photos, design))
        retake = self.verdict == "retake"
        gates = [_gate("blurry" if retake else None) for _ in photos]
        top = TOP_SCORE.get(self.verdict, 0.05)
        probs = {name: 0.02 for name in VISUAL_DEFECTS} | {TOP_CLASS: top}
        checks = [] if retake else _spec(design, self.size_off_mm)
        verdict = decide([PhotoInput(gate=g, probs=probs) for g in gates], BANDS, checks)
        assert verdict.decision == self.verdict, (verdict.decision, self.verdict)
        verdict = with_design_check(verdict, self.design_check)
        details = {
            "verdict": verdict.model_dump(mode="json"),
            "gate": [
                {
                    "passed": g.passed,
                    "retake_codes": g.retake_codes,
                    "messages": {"en": g.messages("en"), "sw": g.messages("sw")},
                    "checks": [c.model_dump(mode="json") for c in g.checks],
                }
                for g in gates
            ],
            "spec_checks": [c.model_dump(mode="json") for c in checks],
            "scores": [probs for _ in photos],
            "thresholds": {
                "bands": {c: [b.t_low, b.t_high] for c, b in BANDS.items()},
                "overridden": [],
            },
            "heatmaps": [_heatmap(p.size, top) for p in photos],
        }
        if self.fingerprint is not None:
            details["fingerprints"] = [self.fingerprint for _ in photos]
        if self.design_check is not None:
            details["design_check"] = self.design_check
        return InspectionOutcome(
            verdict=verdict.decision,
            model_version=self.model_version,
            details=details,
            timings_ms={"scripted": 0.1},
        )
