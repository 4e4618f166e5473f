"""The onnxruntime inferencer: load a model package once, then prepare -> run -> post_process.

No torch here (serving imports this module; a test checks torch stays out of sys.modules).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Union, cast

import cv2
import numpy as np
from numpy.typing import NDArray

from qc_model.errors import DataError
from qc_model.identity import EMBEDDING_NAME
from qc_model.locate import PieceLocation
from qc_model.mat import MatDetection
from qc_model.package import (
    HEATMAPS_NAME,
    INPUT_NAME,
    PROBS_NAME,
    ClassThreshold,
    ModelPackage,
    load_package,
    surface_runner,
)
from qc_model.package_graphs import feature_runner
from qc_model.preprocess import crop_to_piece, normalize
from qc_model.surface import (
    SURFACE_HEATMAP_MAX as SURFACE_HEATMAP_MAX,
)
from qc_model.surface import (
    branch_scores,
    counted_cells,
    counted_features,
    fuse_probability,
    pool_max,
    scores_of_cells,
    surface_view,
)

ImageInput = Union[str, Path, bytes, NDArray[np.uint8]]  # noqa: UP007 (a runtime alias)


@dataclass(frozen=True)
class Prediction:
    """What the model says about one photo."""

    probs: dict[str, float]  # calibrated probability per class, in package class order
    heatmaps: NDArray[np.float32]  # (K, h, w) in 0..1, over the crop
    crop_box: tuple[int, int, int, int]  # (x0, y0, x1, y1) of the crop in the photo's pixels
    timings_ms: dict[str, float] = field(default_factory=dict)
    # Finer maps (over the same crop) for the classes a surface branch scores.
    surface_heatmaps: dict[str, NDArray[np.float32]] = field(default_factory=dict)
    # The network's crop embedding (qc_model.identity), when the package has design references.
    embedding: NDArray[np.float32] | None = None
    # The surface branch's cell features (n, D) of the counted cells of its (h, w) grid over
    # the crop, when the package's anomaly model reads them (qc_model.anomaly, source "branch").
    cell_features: NDArray[np.float32] | None = None
    cell_count: NDArray[np.bool_] | None = None

    def top(self) -> tuple[str, float]:
        name = max(self.probs, key=self.probs.__getitem__)
        return name, self.probs[name]

    def heatmap(self, name: str) -> NDArray[np.float32]:
        """The class's map over the crop: the surface branch's where it scores the class."""
        fine = self.surface_heatmaps.get(name)
        return fine if fine is not None else self.heatmaps[list(self.probs).index(name)]


@dataclass(frozen=True)
class Prepared:
    """One photo made ready for the package's network(s)."""

    tensor: NDArray[np.float32]  # (3, S, S), the defect network's input
    box: tuple[int, int, int, int]
    # The surface branch's crop (H, W, 3) RGB at its scale, if the package has a branch, and
    # the piece's mask on that crop's grid (None: no piece found; every cell counts).
    surface: NDArray[np.uint8] | None = None
    surface_piece: NDArray[np.bool_] | None = None
    # The design the piece is made to (catalog id): the fusion's design offsets apply to it.
    design: str | None = None


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
        anomaly = self.package.anomaly
        # The branch's run also yields the cells' features for the anomaly model.
        self.branch_features = anomaly is not None and anomaly.from_branch

    @property
    def thresholds(self) -> dict[str, ClassThreshold]:
        return dict(self.meta.thresholds)

    @property
    def min_px_per_mm(self) -> float | None:
        """The coarsest photo scale this package reads without enlarging it: its surface
        branch's trained scale less the tolerance it leaves unresampled (None: any scale)."""
        sm = self.meta.surface
        if sm is None or sm.config.px_per_mm is None:
            return None
        return sm.config.px_per_mm / (1.0 + sm.config.scale_tolerance)

    def prepare(
        self,
        image_bgr: NDArray[np.uint8],
        *,
        location: PieceLocation | None = None,
        mat: MatDetection | None = None,
        design: str | None = None,
    ) -> Prepared:
        """Both networks' inputs from one located crop (a gate's location and mat are reused);
        `design`: the catalog id of the piece's design, if known."""
        crop = crop_to_piece(image_bgr, self.meta.preprocess, location=location, mat=mat)
        box = (int(crop.box[0]), int(crop.box[1]), int(crop.box[2]), int(crop.box[3]))
        tensor = normalize(crop.image, self.meta.preprocess)
        if self.meta.surface is None:
            return Prepared(tensor, box, design=design)
        rgb, _, _, piece = surface_view(image_bgr, crop, self.meta.surface.config, mat)
        return Prepared(tensor, box, rgb, piece, design)

    def run_surface(
        self, crop_rgb: NDArray[np.uint8], piece: NDArray[np.bool_] | None = None
    ) -> tuple[NDArray[np.float64], NDArray[np.float32]]:
        """The branch on its crop: logits (Ks,) and cell probabilities (Ks, h, w)."""
        assert self.meta.surface is not None
        run = surface_runner(self.package.surface_session)
        return branch_scores(run, crop_rgb, piece, self.meta.surface.config)

    def run_surface_cells(
        self, crop_rgb: NDArray[np.uint8], piece: NDArray[np.bool_] | None = None
    ) -> tuple[
        tuple[NDArray[np.float64], NDArray[np.float32]], NDArray[np.float32], NDArray[np.bool_]
    ]:
        """`run_surface`, plus from the same run the counted cells' features (n, D) and which
        cells of the grid count (h, w)."""
        sm = self.meta.surface
        assert sm is not None
        run, kept = feature_runner(self.package.surface_session)
        cells, count = counted_cells(run, crop_rgb, piece, sm.config)
        feats = counted_features(count, kept, sm.config)
        return scores_of_cells(cells, count), feats, count

    def fuse(
        self,
        probs: NDArray[np.float32],
        surface_logits: NDArray[np.floating],
        design: str | None = None,
    ) -> NDArray[np.float32]:
        """The package probabilities (K,) with the surface classes' evidence combined in (the
        branch logit less the fusion's offset for `design`)."""
        sm = self.meta.surface
        if sm is None:
            return probs
        out = np.asarray(probs, np.float64).copy()
        for name, f in sm.fusion.items():
            k, j = self.classes.index(name), sm.classes.index(name)
            z = surface_logits[j : j + 1] - (f.design_offsets.get(design, 0.0) if design else 0.0)
            out[k : k + 1] = fuse_probability(out[k : k + 1], z, f.w_model, f.w_surface, f.bias)
        return out.astype(np.float32)

    def run(self, batch: NDArray[np.float32]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """(B, 3, H, W) -> probs (B, K), heatmaps (B, K, h, w)."""
        probs, heatmaps, _ = self.run_all(batch)
        return probs, heatmaps

    def run_all(
        self, batch: NDArray[np.float32]
    ) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32] | None]:
        """`run`, plus the embeddings (B, D) when the package has design references."""
        names = [PROBS_NAME, HEATMAPS_NAME]
        if self.package.identity is not None:
            names.append(EMBEDDING_NAME)
        out = self.package.session.run(names, {INPUT_NAME: np.ascontiguousarray(batch, np.float32)})
        return out[0], out[1], (out[2] if len(out) > 2 else None)

    def post_process(
        self,
        probs: NDArray[np.float32],
        heatmaps: NDArray[np.float32],
        boxes: Sequence[tuple[int, ...]],
        timings: Sequence[dict[str, float]],
        surface: Sequence[tuple[NDArray[np.float64], NDArray[np.float32]] | None] | None = None,
        designs: Sequence[str | None] | None = None,
    ) -> list[Prediction]:
        out = []
        for i in range(probs.shape[0]):
            p, fine = probs[i], {}
            branch = surface[i] if surface is not None else None
            if branch is not None and self.meta.surface is not None:
                logits, cells = branch
                p = self.fuse(p, logits, designs[i] if designs is not None else None)
                sm = self.meta.surface
                for name in sm.fusion:
                    grid = pool_max(np.asarray(cells[sm.classes.index(name)], np.float32))
                    # Scaled to its own peak, like the defect network's maps.
                    fine[name] = np.clip(grid / (grid.max() + 1e-6), 0.0, 1.0).astype(np.float32)
            out.append(
                Prediction(
                    probs={c: float(v) for c, v in zip(self.classes, p, strict=True)},
                    heatmaps=np.clip(heatmaps[i], 0.0, 1.0).astype(np.float32),
                    crop_box=(
                        int(boxes[i][0]),
                        int(boxes[i][1]),
                        int(boxes[i][2]),
                        int(boxes[i][3]),
                    ),
                    timings_ms=dict(timings[i]),
                    surface_heatmaps=fine,
                )
            )
        return out

    def predict_prepared(
        self, prepared: Sequence[Prepared], timings: Sequence[dict[str, float]]
    ) -> list[Prediction]:
        """Run both networks on photos already prepared; adds "inference" (and "surface") ms."""
        t0 = time.perf_counter()
        probs, heatmaps, embeddings = self.run_all(np.stack([p.tensor for p in prepared]))
        # The batch ran as one call: each photo is charged its share.
        per_photo = (time.perf_counter() - t0) * 1e3 / len(prepared)
        surface: list[tuple[NDArray[np.float64], NDArray[np.float32]] | None] = []
        cells: list[tuple[NDArray[np.float32], NDArray[np.bool_]] | None] = []
        for p, t in zip(prepared, timings, strict=True):
            t["inference"] = per_photo
            cells.append(None)
            if p.surface is not None:
                t0 = time.perf_counter()
                if self.branch_features:
                    scores, feats, count = self.run_surface_cells(p.surface, p.surface_piece)
                    surface.append(scores)
                    cells[-1] = (feats, count)
                else:
                    surface.append(self.run_surface(p.surface, p.surface_piece))
                t["surface"] = (time.perf_counter() - t0) * 1e3
            else:
                surface.append(None)
        boxes = [p.box for p in prepared]
        designs = [p.design for p in prepared]
        out = self.post_process(probs, heatmaps, boxes, timings, surface, designs)
        out = [
            replace(p, cell_features=c[0], cell_count=c[1]) if c is not None else p
            for p, c in zip(out, cells, strict=True)
        ]
        if embeddings is None:
            return out
        return [replace(p, embedding=e) for p, e in zip(out, embeddings, strict=True)]

    def predict(
        self,
        images: ImageInput | Sequence[ImageInput],
        designs: Sequence[str | None] | None = None,
    ) -> list[Prediction]:
        """Predictions in input order; a single image gives a list of one. `designs`: each
        photo's design id (catalog), for the fusion's design offsets; None: not known."""
        items = _as_list(images)
        if designs is not None and len(designs) != len(items):
            raise ValueError(f"{len(designs)} designs for {len(items)} photos")
        out: list[Prediction] = []
        for start in range(0, len(items), self.batch_size):
            chunk = items[start : start + self.batch_size]
            prepared, timings = [], []
            for n, item in enumerate(chunk, start):
                t0 = time.perf_counter()
                design = designs[n] if designs is not None else None
                prepared.append(self.prepare(read_image(item), design=design))
                timings.append({"preprocess": (time.perf_counter() - t0) * 1e3})
            out.extend(self.predict_prepared(prepared, timings))
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
