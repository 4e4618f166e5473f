"""The onnxruntime inferencer: load a model package once, then pre_process -> run -> post_process.

No torch here (serving imports this module; a test checks torch stays out of sys.modules).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union, cast

import cv2
import numpy as np
from numpy.typing import NDArray

from qc_model.errors import DataError
from qc_model.package import (
    HEATMAPS_NAME,
    INPUT_NAME,
    PROBS_NAME,
    ClassThreshold,
    ModelPackage,
    load_package,
)
from qc_model.preprocess import preprocess

ImageInput = Union[str, Path, bytes, NDArray[np.uint8]]  # noqa: UP007 (a runtime alias)


@dataclass(frozen=True)
class Prediction:
    """What the model says about one photo."""

    probs: dict[str, float]  # calibrated probability per class, in package class order
    heatmaps: NDArray[np.float32]  # (K, h, w) in 0..1, over the crop
    crop_box: tuple[int, int, int, int]  # (x0, y0, x1, y1) of the crop in the photo's pixels
    timings_ms: dict[str, float] = field(default_factory=dict)

    def top(self) -> tuple[str, float]:
        name = max(self.probs, key=self.probs.__getitem__)
        return name, self.probs[name]

    def heatmap(self, name: str) -> NDArray[np.float32]:
        return self.heatmaps[list(self.probs).index(name)]


def read_image(image: ImageInput) -> NDArray[np.uint8]:
    """A BGR uint8 image from a path, encoded bytes or an array (gray and BGRA are converted).

    Training reads files with OpenCV, so the inferencer decodes with OpenCV too: a different
    decoder (or a reduced-size JPEG decode) would shift pixels and scores.
    """
    if isinstance(image, str | Path):
        path = Path(image)
        if not path.is_file():
            raise DataError(f"{path}: image file not found")
        image = path.read_bytes()
    if isinstance(image, bytes | bytearray | memoryview):
        arr = cv2.imdecode(np.frombuffer(image, dtype=np.uint8), cv2.IMREAD_COLOR)
        if arr is None:
            raise DataError("image bytes could not be decoded (not a JPEG/PNG/WebP image?)")
        return np.asarray(arr, np.uint8)
    if not isinstance(image, np.ndarray):
        raise DataError(f"expected a path, bytes or an array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise DataError(f"image array must be uint8, got {image.dtype}")
    if image.ndim == 2:
        return np.asarray(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR), np.uint8)
    if image.ndim == 3 and image.shape[2] == 4:
        return np.asarray(cv2.cvtColor(image, cv2.COLOR_BGRA2BGR), np.uint8)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise DataError(f"image array must be (H,W), (H,W,3) or (H,W,4), got {image.shape}")


class Inferencer:
    """Load once; `predict` takes one image or a list (path, bytes or BGR array)."""

    def __init__(self, package_dir: Path | str, threads: int = 2, batch_size: int = 8) -> None:
        self.package: ModelPackage = load_package(package_dir, threads=threads)
        self.meta = self.package.meta
        self.classes = list(self.meta.classes)
        self.batch_size = batch_size

    @property
    def thresholds(self) -> dict[str, ClassThreshold]:
        return dict(self.meta.thresholds)

    def pre_process(self, image: ImageInput) -> tuple[NDArray[np.float32], tuple[int, ...]]:
        """(3, H, W) float32 input and the crop box, via the project's one preprocessing."""
        tensor, box = preprocess(read_image(image), self.meta.preprocess)
        return tensor, tuple(int(v) for v in box)

    def run(self, batch: NDArray[np.float32]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """(B, 3, H, W) -> probs (B, K), heatmaps (B, K, h, w)."""
        probs, heatmaps = self.package.session.run(
            [PROBS_NAME, HEATMAPS_NAME], {INPUT_NAME: np.ascontiguousarray(batch, np.float32)}
        )
        return probs, heatmaps

    def post_process(
        self,
        probs: NDArray[np.float32],
        heatmaps: NDArray[np.float32],
        boxes: Sequence[tuple[int, ...]],
        timings: Sequence[dict[str, float]],
    ) -> list[Prediction]:
        return [
            Prediction(
                probs={c: float(p) for c, p in zip(self.classes, probs[i], strict=True)},
                heatmaps=np.clip(heatmaps[i], 0.0, 1.0).astype(np.float32),
                crop_box=(int(boxes[i][0]), int(boxes[i][1]), int(boxes[i][2]), int(boxes[i][3])),
                timings_ms=dict(timings[i]),
            )
            for i in range(probs.shape[0])
        ]

    def predict(self, images: ImageInput | Sequence[ImageInput]) -> list[Prediction]:
        """Predictions in input order; a single image gives a list of one."""
        items = _as_list(images)
        out: list[Prediction] = []
        for start in range(0, len(items), self.batch_size):
            chunk = items[start : start + self.batch_size]
            tensors, boxes, timings = [], [], []
            for item in chunk:
                t0 = time.perf_counter()
                tensor, box = self.pre_process(item)
                tensors.append(tensor)
                boxes.append(box)
                timings.append({"preprocess": (time.perf_counter() - t0) * 1e3})
            t0 = time.perf_counter()
            probs, heatmaps = self.run(np.stack(tensors))
            # The batch ran as one call: each photo is charged its share.
            per_photo = (time.perf_counter() - t0) * 1e3 / len(chunk)
            for t in timings:
                t["inference"] = per_photo
            out.extend(self.post_process(probs, heatmaps, boxes, timings))
        return out


def _as_list(images: ImageInput | Sequence[ImageInput]) -> list[ImageInput]:
    if isinstance(images, str | Path | bytes | bytearray | np.ndarray):
        return [images]
    if not isinstance(images, Sequence):
        raise DataError(f"expected a path, bytes or an array, got {type(images).__name__}")
    # bytes are a Sequence too, but were handled above.
    items = list(cast(Sequence[ImageInput], images))
    if not items:
        raise DataError("no images given")
    return items
