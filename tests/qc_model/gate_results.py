"""A photo gate's result with the given retake codes failed (none: a passed photo), for tests of
the verdict that do not run the gate."""

from __future__ import annotations

from qc_model.gate import GateCheck, GateResult


def gate_result(*failed: str) -> GateResult:
    checks = [
        GateCheck(name=f"check_{c}", measured=0, limit=1, kind="min", passed=False, code=c)
        for c in failed
    ]
    checks.append(GateCheck(name="ok", measured=1, limit=1, kind="min", passed=True, code="x"))
    return GateResult(checks=checks)
