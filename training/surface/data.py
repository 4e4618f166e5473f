"""The branch's photos: each record's crop at the branch's scale with its masks as bits.

A sample is what the service would give the branch (the locator's box, the mat's scale, the
resample: `photo_surface_crop`), with the renderer's defect masks carried through the same crop
and resample. `prepare` makes every sample once and keeps it on disk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from qc_model.errors import DataError
from qc_model.inference import read_image
from qc_model.manifest import Record
from qc_model.preprocess import PreprocessConfig, crop_to_piece
from qc_model.surface import SurfaceConfig, surface_view
from training.cell_targets import extract_mask

MAX_CLASSES = 8  # class membership is kept as bits of one uint8 per pixel


@dataclass
class Sample:
    """One photo's piece crop at the branch's scale and its defect masks as bits."""

    image: NDArray[np.uint8]  # (H, W, 3) RGB, H and W multiples of the stride
    bits: NDArray[np.uint8]  # (H, W): bit k set where class k's mask is
    labels: NDArray[np.bool_]  # (K,)
    design: str
    # (H, W) the piece as the locator found it, through the same crop (None: no piece found)
    piece: NDArray[np.bool_] | None = None


def photo_surface_crop(
    bgr: NDArray[np.uint8], preprocess: PreprocessConfig, cfg: SurfaceConfig
) -> tuple[NDArray[np.uint8], tuple[int, int, int, int], float, NDArray[np.bool_] | None]:
    """The serving path (Inferencer.prepare): the locator's box, the mat's scale, the resample;
    (RGB crop, box, factor, the piece's mask on the crop's grid or None)."""
    return surface_view(bgr, crop_to_piece(bgr, preprocess), cfg)


def make_sample(
    record: Record,
    root: Path,
    classes: Sequence[str],
    cfg: SurfaceConfig,
    preprocess: PreprocessConfig | None = None,
) -> Sample:
    """A record's branch input and its masks carried through the same crop and resample."""
    if len(classes) > MAX_CLASSES:
        raise DataError(f"at most {MAX_CLASSES} classes, got {len(classes)}")
    bgr = read_image(root / record.image)
    rgb, box, f, piece = photo_surface_crop(bgr, preprocess or PreprocessConfig(), cfg)
    side = box[2] - box[0]
    size = rgb.shape[0] if f == 1.0 else max(cfg.stride, round(side * f))
    bits = np.zeros(rgb.shape[:2], np.uint8)
    for k, name in enumerate(classes):
        rel = record.masks.get(name) if name in record.labels else None
        if rel is None:
            continue
        full = cv2.imread(str(root / rel), cv2.IMREAD_GRAYSCALE)
        if full is None or full.shape[:2] != (record.height, record.width):
            raise DataError(f"{record.id}: mask {rel} for {name} is missing or not photo-sized")
        m = extract_mask(np.asarray(full > 0, np.uint8) * 255, box)
        if f != 1.0:  # area resampling then "any coverage": a pit of one pixel stays
            m = cv2.resize(m, (size, size), interpolation=cv2.INTER_AREA)
        bits[: m.shape[0], : m.shape[1]] |= (m[: bits.shape[0], : bits.shape[1]] > 0).astype(
            np.uint8
        ) << k
    labels = np.array([c in record.labels for c in classes])
    return Sample(rgb, bits, labels, record.design_id or "(none)", piece)


def _prepare_one(job: tuple[Record, Path, tuple[str, ...], SurfaceConfig, Path]) -> Path:
    record, root, classes, cfg, out = job
    if not out.is_file():
        s = make_sample(record, root, classes, cfg)
        tmp = out.with_suffix(".tmp.npz")
        extra = {} if s.piece is None else {"piece": s.piece}
        np.savez(
            tmp, image=s.image, bits=s.bits, labels=s.labels, design=np.array(s.design), **extra
        )
        tmp.replace(out)
    return out


def prepare(
    records: Sequence[Record],
    root: Path,
    classes: Sequence[str],
    cfg: SurfaceConfig,
    cache: Path,
    workers: int,
    desc: str,
) -> list[Sample]:
    """Every record's sample, made once (in `workers` processes) and kept in `cache`."""
    import hashlib
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    key = hashlib.sha256(f"{cfg.model_dump_json()}|{','.join(classes)}".encode()).hexdigest()[:8]
    folder = cache / key
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(r, root, tuple(classes), cfg, folder / f"{r.sha256[:40]}.npz") for r in records]
    if workers > 1 and len(jobs) > workers:
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("forkserver")) as pool:
            done = pool.map(_prepare_one, jobs, chunksize=8)
            paths = list(tqdm(done, total=len(jobs), desc=desc, unit="photo"))
    else:
        paths = [_prepare_one(j) for j in tqdm(jobs, desc=desc, unit="photo")]
    out = []
    for p in paths:
        with np.load(p) as z:
            piece = z["piece"] if "piece" in z.files else None
            out.append(Sample(z["image"], z["bits"], z["labels"], str(z["design"]), piece))
    return out


def cell_targets(bits: NDArray[np.uint8], k: int, stride: int) -> NDArray[np.float32]:
    """(H, W) bits -> (K, H // stride, W // stride): 1 where any pixel of the cell has class k."""
    h, w = bits.shape[0] // stride, bits.shape[1] // stride
    cells = bits[: h * stride, : w * stride].reshape(h, stride, w, stride)
    any_bits = np.bitwise_or.reduce(np.bitwise_or.reduce(cells, axis=3), axis=1)  # (h, w)
    return np.stack([(any_bits >> c) & 1 for c in range(k)]).astype(np.float32)


def median_scale(records: Sequence[Record], root: Path) -> float | None:
    scales = []
    for r in records:
        loc = crop_to_piece(read_image(root / r.image), PreprocessConfig()).location
        if loc is not None and loc.mat is not None:
            scales.append(loc.mat.px_per_mm)
    return float(np.median(scales)) if scales else None
