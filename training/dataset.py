"""Training data: manifest records -> piece crops (cached once per photo) -> normalised tensors."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from numpy.typing import NDArray
from torch.utils.data import Dataset
from tqdm import tqdm

from qc_model.errors import DataError
from qc_model.inference import read_image
from qc_model.locate import Box
from qc_model.manifest import GOOD, Manifest, ManifestError, Record
from qc_model.preprocess import PreprocessConfig, crop_to_piece, normalize
from qc_model.taxonomy import VISUAL_DEFECTS
from training.atomic import write_atomic
from training.augment import apply


def load_manifest(path: Path) -> tuple[Manifest, Path]:
    """The manifest and the folder its image paths are relative to."""
    if not path.exists():
        raise DataError(f"manifest not found: {path}")
    manifest = Manifest.read(path)
    return manifest, path if path.is_dir() else path.parent


def resolve_root(manifest: Manifest | Path | str, root: Path | None) -> Path:
    """The folder image paths are relative to: given, or the manifest file's folder."""
    if root is not None:
        return Path(root)
    if isinstance(manifest, str | Path):
        p = Path(manifest)
        return p if p.is_dir() else p.parent
    raise DataError(
        "a Manifest object does not know its folder: pass root= (the folder of manifest.jsonl) "
        "or the manifest's path instead"
    )


def label_view(manifest: Manifest, label_set: str) -> Manifest:
    """The classes a network trains on. "visual": only defects a crop can show (taxonomy's
    VISUAL_DEFECTS); size, finish colour and pair symmetry are measured by the spec checks.
    "all": every class of the manifest. Single-label data is always taken as it is."""
    if label_set == "all" or manifest.header.task != "multilabel":
        return manifest
    visual = [c for c in manifest.header.classes if c in VISUAL_DEFECTS]
    if not visual:
        raise DataError("label_set 'visual': the manifest has no visual defect classes")
    return manifest.restrict(visual)


def for_classes(manifest: Manifest, classes: Sequence[str], source: object) -> Manifest:
    """`manifest` labelled with a trained model's classes (a subset of its own), else DataError."""
    if list(manifest.header.classes) == list(classes):
        return manifest
    try:
        return manifest.restrict(list(classes))
    except ManifestError as exc:
        raise DataError(
            f"{source}: task/classes {manifest.header.task} {list(manifest.header.classes)} do "
            f"not cover the model's {list(classes)} ({exc})"
        ) from None


def split_records(manifest: Manifest, root: Path, split: str) -> list[Record]:
    """The records of `split` whose image files exist; DataError naming the first missing ones."""
    records = manifest.split(split)
    missing = [r.image for r in records if not (root / r.image).is_file()]
    if missing:
        more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
        raise DataError(f"{len(missing)} image files missing under {root}: {missing[:3]}{more}")
    return records


def check_trainable(manifest: Manifest, records: Sequence[Record], split: str = "train") -> None:
    """Refuse data a classifier cannot learn from: no photos, or only one kind of photo."""
    if not records:
        raise DataError(f"no photos in split '{split}': nothing to train on")
    kinds: set[tuple[str, ...]]
    if manifest.header.task == "single_label":
        kinds = {(r.labels[0],) for r in records}
    else:
        kinds = {tuple(sorted(r.labels)) or (GOOD,) for r in records}
    if len(kinds) < 2:
        only = ", ".join(sorted("+".join(k) for k in kinds))
        raise DataError(f"split '{split}' has a single class ({only}): a classifier needs two")


def targets_for(records: Sequence[Record], classes: Sequence[str], task: str) -> NDArray[Any]:
    """Multi-label: (N, K) float32 0/1. Single-label: (N,) int64 class indices."""
    index = {c: k for k, c in enumerate(classes)}
    if task == "single_label":
        return np.array([index[r.labels[0]] for r in records], np.int64)
    y = np.zeros((len(records), len(classes)), np.float32)
    for i, r in enumerate(records):
        for label in r.labels:
            y[i, index[label]] = 1.0
    return y


class CropStore:
    """Piece crops keyed by photo content and preprocessing, kept as PNG files on disk.

    Locating the piece costs tens of milliseconds on a 1024 px photo; a run over many epochs
    (and the next run on the same data) should pay it once per photo.
    """

    def __init__(self, root: Path, cfg: PreprocessConfig, cache_dir: Path | None) -> None:
        self.root, self.cfg = root, cfg
        digest = hashlib.sha256(cfg.model_dump_json().encode()).hexdigest()[:12]
        self.dir = cache_dir / "crops" / digest if cache_dir else None
        self._memory: dict[str, NDArray[np.uint8]] = {}
        self._boxes: dict[str, Box] = {}

    def _path(self, record: Record) -> Path | None:
        return self.dir / f"{record.sha256[:40]}.png" if self.dir else None

    def box(self, record: Record) -> Box:
        """The crop's square box in photo pixels (kept beside the crop; located again for a
        crop cached before boxes were kept)."""
        hit = self._boxes.get(record.sha256)
        if hit is not None:
            return hit
        path = self._path(record)
        side = path.with_suffix(".box") if path is not None else None
        box: Box | None = None
        if side is not None and side.is_file():
            try:
                x0, y0, x1, y1 = (int(v) for v in side.read_text().split())
                box = (x0, y0, x1, y1)
            except ValueError:
                box = None  # a damaged sidecar is recomputed, not trusted
        if box is None:
            box = crop_to_piece(read_image(self.root / record.image), self.cfg).box
            if path is not None:
                _write_box(path, box)
        self._boxes[record.sha256] = box
        return box

    def get(self, record: Record) -> NDArray[np.uint8]:
        """uint8 RGB (S, S, 3) crop of the record's photo."""
        hit = self._memory.get(record.sha256)
        if hit is not None:
            return hit
        path = self._path(record)
        crop = cv2.imread(str(path), cv2.IMREAD_COLOR) if path and path.is_file() else None
        rgb: NDArray[np.uint8]
        if crop is not None:
            rgb = np.ascontiguousarray(crop[:, :, ::-1], dtype=np.uint8)
        else:
            image = read_image(self.root / record.image)
            crop = crop_to_piece(image, self.cfg)
            rgb = crop.image
            self._boxes[record.sha256] = crop.box
            if path is not None:
                _write_box(path, crop.box)
                _write_png_atomic(path, rgb)
        if len(self._memory) < 20000:  # ~3 GB at 224 px; beyond that, read back from disk
            self._memory[record.sha256] = rgb
        return rgb

    def warm(
        self,
        records: Sequence[Record],
        desc: str = "crops",
        quiet: bool = False,
        workers: int = 1,
    ) -> None:
        """Locate and crop every photo once. With a disk cache and workers > 1 the missing
        crops are made by a process pool and read back lazily by `get`."""
        todo = list(records)
        if self.dir is not None and workers > 1:
            todo = [r for r in records if not self._path(r).is_file()]  # type: ignore[union-attr]
            if len(todo) > workers:
                _crop_in_pool(self, todo, workers, desc, quiet)
                return
        for r in tqdm(todo, desc=desc, unit="photo", disable=quiet, leave=False):
            self.get(r)


def _crop_one(job: tuple[Path, PreprocessConfig, Path]) -> None:
    image_path, cfg, out = job
    crop = crop_to_piece(read_image(image_path), cfg)
    _write_box(out, crop.box)
    _write_png_atomic(out, crop.image)


def _crop_in_pool(
    store: CropStore, todo: Sequence[Record], workers: int, desc: str, quiet: bool
) -> None:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    jobs = [
        (store.root / r.image, store.cfg, store._path(r))  # type: ignore[misc]
        for r in todo
    ]
    # forkserver: forking a process whose OpenCV thread pool has run can hang the child.
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("forkserver")) as pool:
        for _ in tqdm(
            pool.map(_crop_one, jobs, chunksize=8),
            total=len(jobs), desc=desc, unit="photo", disable=quiet, leave=False,
        ):  # fmt: skip
            pass


def _write_box(crop_path: Path, box: Box) -> None:
    """The crop's box beside it (`<sha>.box`: x0 y0 x1 y1 in photo pixels)."""
    text = " ".join(str(v) for v in box)
    write_atomic(crop_path.with_suffix(".box"), lambda tmp: Path(tmp).write_text(text))


def _write_png_atomic(path: Path, rgb: NDArray[np.uint8]) -> None:
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    write_atomic(path, lambda tmp: cv2.imwrite(tmp, bgr), suffix=".png")


class CropDataset(Dataset):
    """(normalised crop (3, S, S), target) per record; augmented when a pipeline is given."""

    def __init__(
        self,
        records: Sequence[Record],
        targets: NDArray[Any],
        store: CropStore,
        augment: Any = None,
    ) -> None:
        self.records, self.targets, self.store, self.augment = (
            list(records),
            targets,
            store,
            augment,
        )

    def __len__(self) -> int:
        return len(self.records)

    def view(self, i: int, pipeline: Any) -> NDArray[np.uint8]:
        """One crop, augmented by `pipeline` (None: as it is)."""
        return apply(pipeline, self.store.get(self.records[i]))

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(normalize(self.view(i, self.augment), self.store.cfg))
        return x, torch.as_tensor(self.targets[i])


class FeatureDataset(Dataset):
    """Cached frozen-trunk features: (N, V, C, h, w) float16; view 0 is the clean one.

    In training each item is a random view, so a few cached augmentations still vary per epoch.
    """

    def __init__(
        self, feats: torch.Tensor, targets: NDArray[Any], random_view: bool, flip: bool = False
    ) -> None:
        self.feats, self.targets, self.random_view = feats, targets, random_view
        self.flip = flip

    def __len__(self) -> int:
        return int(self.feats.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        views = int(self.feats.shape[1])
        v = int(torch.randint(views, ()).item()) if self.random_view and views > 1 else 0
        x, y = self.feats[i, v].float(), torch.as_tensor(self.targets[i])
        if self.flip:
            # (C, h, w): a mirror and 0-3 quarter turns, like flip_rotate on the photo.
            if torch.rand(()) < 0.5:
                x = x.flip(-1)
            x = torch.rot90(x, int(torch.randint(4, ()).item()), dims=(-2, -1))
        return x, y


@torch.no_grad()
def cache_views(
    model: Any,
    dataset: CropDataset,
    views: int,
    device: torch.device,
    batch_size: int = 32,
    desc: str = "features",
    quiet: bool = False,
    disk: Any = None,
) -> torch.Tensor:
    """Run the frozen trunk once per (photo, view); view 0 unaugmented, the rest augmented.
    Returns the features (N, V, C, h, w) float16.

    With `disk` (a training.feature_cache.FeatureCache) photos whose views are stored already
    are read back instead, and the computed ones are stored for the next run."""
    model.eval()
    n = len(dataset)
    out: torch.Tensor | None = None
    todo = list(range(n))
    if disk is not None:
        hits = {}
        for i in range(n):
            t = disk.load(dataset.records[i].sha256, views)
            if t is not None:
                hits[i] = t
        for i, t in hits.items():
            if out is None:
                out = torch.empty((n, views, *t.shape[1:]), dtype=torch.float16)
            out[i] = t
        todo = [i for i in range(n) if i not in hits]
    bar = tqdm(total=len(todo) * views, desc=desc, unit="view", disable=quiet, leave=False)
    for v in range(views):
        pipeline = dataset.augment if v > 0 else None
        for start in range(0, len(todo), batch_size):
            idx = todo[start : start + batch_size]
            x = torch.from_numpy(
                np.stack([normalize(dataset.view(i, pipeline), dataset.store.cfg) for i in idx])
            )
            z = model.forward_trunk(x.to(device)).to("cpu", torch.float16)  # (B, C, h, w)
            if out is None:
                out = torch.empty((n, views, *z.shape[1:]), dtype=torch.float16)
            out[idx, v] = z
            bar.update(len(idx))
    bar.close()
    assert out is not None
    if disk is not None:
        for i in todo:
            disk.save(dataset.records[i].sha256, out[i])
    return out
