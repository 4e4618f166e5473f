"""One request's decode plan: how finely its photos are decoded, and what the gate and the spec
checks measure on. Decided once per request (`plan_decode`), from the design and the model.

A design's tight tolerances need more px/mm than the service's least decode size; a model with
a surface branch reads photos at a fixed px/mm (`Inferencer.min_px_per_mm`) and must not be fed
an enlarged photo, since enlarging brings back no hairline that the DCT reduction dropped. When
the model asks for a finer decode than the gate and the spec checks need, those two measure on
a copy reduced as the decoder would have reduced the photo without the branch (whole-block
means), so their results and their cost stay what they are without it; the piece and the mat
found on that copy are carried up to the decoded photo for the model's crops.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from qc_model.catalog import Design
from qc_model.decode import DecodeLimits, reduce_whole
from qc_model.gate import GateConfig, decode_long_side
from qc_model.locate import PieceLocation
from qc_model.mat import MatDetection


@dataclass(frozen=True)
class DecodePlan:
    decode_long_side: int  # the decoder's target: qc_model.decode picks the DCT scale from it
    # The gate and the spec checks measure on a copy reduced to at least this long side; None:
    # on the decoded photo itself (it was decoded for them).
    measure_long_side: int | None = None

    def limits(self, base: DecodeLimits) -> DecodeLimits:
        """`base` (the service's size and format limits) with this plan's decode target."""
        return replace(base, target_long_side=self.decode_long_side)

    def measuring_copy(self, image: NDArray[np.uint8]) -> tuple[NDArray[np.uint8], int]:
        """(the image the gate and spec checks measure on, how many times smaller it is)."""
        if self.measure_long_side is None:
            return image, 1
        return reduce_whole(image, self.measure_long_side)


def plan_decode(
    design: Design | None,
    *,
    floor: int,
    model_px_per_mm: float | None = None,
    gate: GateConfig | None = None,
) -> DecodePlan:
    """The plan for photos of `design` (long side at least `floor`) judged by a model that reads
    photos at `model_px_per_mm` (None: at whatever scale they come)."""
    measure = decode_long_side(design, gate, floor)
    if model_px_per_mm is None:
        return DecodePlan(decode_long_side=measure)
    return DecodePlan(
        decode_long_side=decode_long_side(design, gate, floor, model_px_per_mm),
        measure_long_side=measure,
    )


def carried_up(
    location: PieceLocation | None,
    mat: MatDetection | None,
    factor: int,
    shape: tuple[int, int],
) -> tuple[PieceLocation | None, MatDetection | None]:
    """The piece and the mat found on a measuring copy `factor` times smaller, on the (H, W)
    `shape` photo it was reduced from."""
    if factor == 1:
        return location, mat
    return (
        location.enlarged(factor, shape) if location is not None else None,
        mat.enlarged(factor) if mat is not None else None,
    )
