"""`kito data synth`: render a synthetic data set (images, masks, manifest) in parallel."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from qc_model.catalog import Design
from qc_model.errors import DataError
from qc_model.manifest import Header, Manifest, ManifestError, Record, sha256_file
from qc_model.splits import assign_splits
from qc_model.taxonomy import CAPTURE_CONDITIONS
from training.synth.designs import load_designs
from training.synth.photo import make_item, render_photo

GENERATOR_VERSION = "1"
N_ARTISANS = 40
# Binary masks compress well even at the fastest zlib level.
_PNG = [cv2.IMWRITE_PNG_COMPRESSION, 1]


@dataclass(frozen=True)
class SynthOptions:
    count: int = 200
    size: int = 1024  # long side of a photo, px
    defect_rate: float = 0.35
    difficulty: float = 0.5
    photos_per_piece: int = 2
    seed: int = 0
    designs: tuple[str, ...] | None = None
    # Capture conditions applied to every photo (e.g. ("defocus_blur",) for photo-gate tests).
    force_capture: tuple[str, ...] = ()

    def check(self) -> None:
        if self.count < 1:
            raise DataError(f"count must be at least 1, got {self.count}")
        if not 256 <= self.size <= 4000:
            raise DataError(f"size must be between 256 and 4000 px, got {self.size}")
        for name in ("defect_rate", "difficulty"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise DataError(f"{name} must be between 0 and 1, got {v}")
        unknown = [c for c in self.force_capture if c not in CAPTURE_CONDITIONS]
        if unknown:
            raise DataError(f"unknown capture conditions {unknown}; known: {CAPTURE_CONDITIONS}")
        if self.photos_per_piece < 1:
            raise DataError(f"photos_per_piece must be at least 1, got {self.photos_per_piece}")


_STATE: dict[str, Any] = {}


def _init(designs: list[Design], opts: SynthOptions, out_dir: Path) -> None:
    # One OpenCV thread per worker: the pool already uses every core.
    cv2.setNumThreads(1)
    _STATE.update(designs=designs, opts=opts, out=out_dir)


def _design_for(piece: int, designs: list[Design], seed: int) -> Design:
    """Designs in a seeded round-robin, so every design appears about equally often."""
    n = len(designs)
    perm = np.random.default_rng([seed, piece // n, 77]).permutation(n)
    return designs[int(perm[piece % n])]


def _one(index: int) -> dict[str, Any]:
    designs, opts, out = _STATE["designs"], _STATE["opts"], _STATE["out"]
    piece, shot = divmod(index, opts.photos_per_piece)
    design = _design_for(piece, designs, opts.seed)
    item = make_item(design, opts.seed, piece, opts.defect_rate)
    photo = render_photo(
        item, opts.seed, piece, shot, opts.size, opts.difficulty, opts.force_capture
    )
    rid = f"synth-{opts.seed}-{index:06d}"
    image_rel = f"images/{rid}.jpg"
    quality = int(photo.meta["jpeg_quality"])
    ok, buf = cv2.imencode(".jpg", photo.image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError(f"JPEG encoding failed for {rid}")
    (out / image_rel).write_bytes(buf.tobytes())
    masks = {}
    for label, m in photo.masks.items():
        rel = f"masks/{rid}__{label}.png"
        cv2.imwrite(str(out / rel), m.astype(np.uint8) * 255, _PNG)
        masks[label] = rel
    piece_rel = f"masks/{rid}__piece.png"
    cv2.imwrite(str(out / piece_rel), photo.piece_mask.astype(np.uint8) * 255, _PNG)
    rng = np.random.default_rng([opts.seed, piece, 2])
    meta = dict(photo.meta, piece_mask=piece_rel, shot=shot)
    h, w = photo.image.shape[:2]
    return Record(
        id=rid,
        image=image_rel,
        sha256=sha256_file(out / image_rel),
        width=w,
        height=h,
        design_id=design.id,
        piece_id=f"synth-{opts.seed}-p{piece:06d}",
        artisan_id=f"artisan-{int(rng.integers(N_ARTISANS)):03d}",
        labels=photo.labels,
        masks=masks,
        capture=photo.capture,
        source="synthetic",
        meta=meta,
    ).model_dump()


def _prepare(out_dir: Path) -> None:
    """Make out_dir ready: new or empty, or an earlier synthetic data set, whose listed files
    are removed so that no stale photo outlives the manifest that named it."""
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"output {out_dir} exists and is not a folder")
    old = out_dir / "manifest.jsonl"
    if old.is_file():
        try:
            previous = Manifest.read(old)
        except ManifestError as exc:
            msg = f"{out_dir} holds an unreadable manifest; choose a new folder ({exc})"
            raise DataError(msg) from None
        if previous.header.recipe.get("generator") != "training.synth":
            raise DataError(f"{out_dir} holds a data set not made by `kito data synth`")
        for r in previous.records:
            for rel in [r.image, *r.masks.values(), r.meta.get("piece_mask")]:
                if rel:
                    (out_dir / rel).unlink(missing_ok=True)
    elif out_dir.is_dir() and any(out_dir.iterdir()):
        raise DataError(f"output folder {out_dir} is not empty (and holds no synthetic data set)")
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    (out_dir / "masks").mkdir(parents=True, exist_ok=True)


def generate_dataset(
    catalog_dir: Path, out_dir: Path, opts: SynthOptions, workers: int = 0
) -> Manifest:
    """Render `opts.count` photos into out_dir (images/, masks/, manifest.jsonl).

    Byte-identical for the same options and seed, whatever `workers` (0 = all cores).
    """
    opts.check()
    designs = load_designs(Path(catalog_dir), opts.designs)
    out_dir = Path(out_dir)
    _prepare(out_dir)
    workers = workers or os.cpu_count() or 1
    workers = min(workers, opts.count)
    indices = range(opts.count)
    bar = dict(total=opts.count, desc="synth", unit="photo", disable=None)
    if workers <= 1:
        threads = cv2.getNumThreads()
        _init(designs, opts, out_dir)
        try:
            rows = [_one(i) for i in tqdm(indices, **bar)]
        finally:
            cv2.setNumThreads(threads)  # leave the caller's OpenCV as it was
    else:
        # Not "fork": a parent that has used OpenCV's thread pool (a notebook kernel, a test run)
        # can leave its locks held in the child, which then hangs in cv2.setNumThreads.
        ctx = get_context("forkserver" if os.name == "posix" else "spawn")
        with ctx.Pool(workers, initializer=_init, initargs=(designs, opts, out_dir)) as pool:
            rows = list(tqdm(pool.imap(_one, indices, chunksize=2), **bar))
    records = assign_splits([Record.model_validate(r) for r in rows], seed=opts.seed)
    recipe = {
        "generator": "training.synth",
        "generator_version": GENERATOR_VERSION,
        "options": {
            **dataclasses.asdict(opts),
            "designs": list(opts.designs or []),
            "force_capture": list(opts.force_capture),
        },
        "seed": opts.seed,
        "designs": [d.id for d in designs],
    }
    header = Header(name=f"synth-seed{opts.seed}", task="multilabel", recipe=recipe)
    return Manifest(header=header, records=records).write(out_dir / "manifest.jsonl")
