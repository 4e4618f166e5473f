"""training.cell_targets: the crop's part of a full-photo defect mask."""

from __future__ import annotations

import numpy as np

from training.cell_targets import extract_mask


def test_a_mask_is_cut_to_the_box_and_zero_past_the_frame() -> None:
    full = np.zeros((10, 10), np.uint8)
    full[:, 0] = 255
    full[2, 3] = 255
    out = extract_mask(full, (-5, 0, 5, 10))
    # Past the frame the mask is empty, not a replicated edge.
    assert out.shape == (10, 10) and out[:, :5].sum() == 0 and (out[:, 5] == 255).all()
    assert out[2, 8] == 255 and out.sum() == 255 * 11
    inside = extract_mask(full, (2, 1, 5, 4))
    assert inside.shape == (3, 3) and inside[1, 1] == 255 and inside.sum() == 255
