"""A branch's logit per photo and class, counted as the service counts it
(qc_model.surface.branch_scores): the torch network while training, the ONNX graph once exported.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from qc_model.package import surface_runner
from qc_model.surface import SurfaceConfig, branch_scores
from training.surface.data import Sample


def torch_runner(model: Any) -> Callable[[NDArray[np.float32]], NDArray[np.float32]]:
    """The torch branch, put in eval mode, as a `BranchRunner` for branch_scores."""
    import torch

    model.eval()

    def run(x: NDArray[np.float32]) -> NDArray[np.float32]:
        with torch.inference_mode():
            return np.asarray(model(torch.from_numpy(x)).numpy(), np.float32)

    return run


def branch_logits(
    model: Any, samples: Sequence[Sample], cfg: SurfaceConfig, desc: str
) -> NDArray[np.float64]:
    """(N, K): each class's branch logit (torch), counted as the service counts it
    (qc_model.surface.branch_scores)."""
    run = torch_runner(model)
    out = [branch_scores(run, s.image, s.piece, cfg)[0] for s in tqdm(samples, desc=desc)]
    return np.stack(out) if out else np.zeros((0, 0))


def ort_logits(
    session: Any, samples: Sequence[Sample], cfg: SurfaceConfig, desc: str
) -> NDArray[np.float64]:
    run = surface_runner(session)
    out = [branch_scores(run, s.image, s.piece, cfg)[0] for s in tqdm(samples, desc=desc)]
    return np.stack(out)
