"""Frozen-trunk features on disk, per photo, so that a run computes only the photos it has not
seen: a retraining pays the trunk for the newly reviewed photos, not again for the base data.

The trunk pass is most of a CPU training run (docs/BENCHMARKS.md: 63 % of the bundled model's).
Its output depends only on the trunk's weights, the crop (photo content and preprocessing) and,
for augmented views, the augmentation settings, so the folder is named after a digest of those
and each photo's views are one file named after its sha256. A champion trained with the trunk
frozen at ImageNet weights, and a challenger fine-tuned from it with the same frozen stages,
share the folder.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from training.atomic import write_atomic


def trunk_digest(model: Any) -> str:
    """sha256 over the frozen trunk's parameters and buffers (BatchNorm statistics included)."""
    h = hashlib.sha256(str(model.freeze_blocks).encode())
    for module in model._trunk_modules():
        for name, t in sorted(module.state_dict().items()):
            h.update(name.encode())
            h.update(t.detach().to("cpu").contiguous().numpy().tobytes())
    return h.hexdigest()


class FeatureCache:
    def __init__(self, root: Path, model: Any, preprocess: Any, augment: Any) -> None:
        h = hashlib.sha256(trunk_digest(model).encode())
        h.update(preprocess.model_dump_json().encode())
        h.update(augment.model_dump_json().encode() if augment is not None else b"none")
        self.dir = Path(root) / "features" / h.hexdigest()[:16]

    def _path(self, sha256: str) -> Path:
        return self.dir / f"{sha256[:40]}.pt"

    def load(self, sha256: str, views: int) -> torch.Tensor | None:
        """(views, C, h, w) float16 for the photo, if at least `views` views are stored."""
        path = self._path(sha256)
        if not path.is_file():
            return None
        try:
            t = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # a damaged file is recomputed, not trusted
            return None
        if not isinstance(t, torch.Tensor) or t.dim() != 4 or t.shape[0] < views:
            return None
        return t[:views]

    def save(self, sha256: str, views: torch.Tensor) -> None:
        data = views.to(torch.float16).contiguous().clone()
        write_atomic(self._path(sha256), lambda tmp: torch.save(data, tmp))
