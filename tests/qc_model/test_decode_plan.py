"""The request's decode plan: decode size, the copy the gate and spec checks measure on, and the
piece and mat carried back up to the decoded photo."""

from __future__ import annotations

import numpy as np
import pytest
from test_measure import design

from qc_model.decode import DecodeLimits
from qc_model.decode_plan import DecodePlan, carried_up, plan_decode
from qc_model.gate import GateConfig, decode_long_side
from qc_model.locate import PieceLocation
from qc_model.mat import MatDetection

LOOSE = design("KQ-HOOP-BR-50")  # ± 2.0 mm


def test_without_a_model_scale_the_photo_is_decoded_for_the_gate_and_measured_as_is() -> None:
    plan = plan_decode(LOOSE, floor=1000)
    assert plan == DecodePlan(decode_long_side=decode_long_side(LOOSE, floor=1000))
    image = np.zeros((1536, 2048, 3), np.uint8)
    copy, factor = plan.measuring_copy(image)
    assert copy is image and factor == 1


def test_a_model_scale_decodes_finer_and_the_gate_measures_a_reduced_copy() -> None:
    plan = plan_decode(LOOSE, floor=1000, model_px_per_mm=4.5)
    assert plan.decode_long_side == 1665 > plan.measure_long_side == 1000
    limits = plan.limits(DecodeLimits(max_bytes=123, target_long_side=1000))
    assert limits == DecodeLimits(max_bytes=123, target_long_side=1665)
    image = np.arange(2048 * 1536 * 3, dtype=np.uint32).astype(np.uint8).reshape(1536, 2048, 3)
    copy, factor = plan.measuring_copy(image)
    assert factor == 2 and copy.shape == (768, 1024, 3)
    # Whole-block means, as the decoder's DCT scaling would have reduced the photo.
    block = image[:2, :2].reshape(4, 3).astype(np.float64).mean(axis=0)
    assert np.abs(copy[0, 0].astype(np.float64) - block).max() <= 1


def test_the_gate_config_and_floor_decide_the_measuring_size() -> None:
    strict = GateConfig(min_px_per_mm=6.0)
    plan = plan_decode(LOOSE, floor=1000, model_px_per_mm=0.5, gate=strict)
    assert plan.measure_long_side == decode_long_side(LOOSE, strict, 1000) > 1000
    assert plan.decode_long_side == plan.measure_long_side


def test_what_the_copy_found_is_carried_up_to_the_decoded_photo() -> None:
    mask = np.zeros((10, 20), np.uint8)
    mask[2:5, 3:9] = 255
    loc = PieceLocation(mask, [(3, 2, 9, 5)], (3, 2, 9, 5), 0.09, False, None)
    mat = MatDetection(np.eye(3), (0, 1), 2.5, 0.1)
    same_loc, same_mat = carried_up(loc, mat, 1, (10, 20))
    assert same_loc is loc and same_mat is mat
    big_loc, big_mat = carried_up(loc, mat, 2, (20, 40))
    assert big_loc is not None and big_mat is not None
    assert big_loc.bbox == (6, 4, 18, 10) and big_loc.mask.shape == (20, 40)
    assert big_mat.px_per_mm == pytest.approx(5.0)
    assert carried_up(None, None, 2, (20, 40)) == (None, None)
