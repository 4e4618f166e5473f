"""The spec check's reason for QC staff says where the error lies, and never contradicts the
result: 13.39 off a 10 mm tolerance is 3.39 beyond it, named with the band a person checks."""

from __future__ import annotations

import pytest

from qc_model.spec_checks import judge


@pytest.mark.parametrize(
    ("measured", "result", "words"),
    [
        (190.5, "pass", "off by 0.50 mm, within the tolerance"),
        (199.0, "borderline", "off by 9.00 mm, within the tolerance but less than 1.50 from"),
        (
            203.39,
            "borderline",
            "off by 13.39 mm, 3.39 beyond the tolerance but within the measurement's "
            "uncertainty (fails when off by more than 13.80): a person checks",
        ),
        (211.0, "fail", "off by 21.00 mm, 11.00 beyond the tolerance (fails when off by more"),
        (177.0, "borderline", "off by 13.00 mm, 3.00 beyond the tolerance but within"),
    ],
)
def test_reason_matches_the_result(measured: float, result: str, words: str) -> None:
    check = judge("size_loop_length", measured, 190.0, 10.0, 1.5, "mm", "wrong_size", 13.8)
    assert check.result == result
    assert check.reason.startswith("size_loop_length ")
    assert words in check.reason, check.reason
    assert ("beyond" in check.reason) == (abs(measured - 190.0) > 10.0)
