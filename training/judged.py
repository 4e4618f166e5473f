"""Which photos the service would judge: those the photo gate passes.

The service never asks the model about a photo the gate refuses; the artisan is asked for a
retake instead (qc_model.verdict.decide). Thresholds chosen for a defect recall on every
validation photo are pulled down by defects that a blurred, far or cut-off photo cannot show,
and every good piece pays for that in false holds. `kito surface attach --judged-only` and
`kito eval` therefore use these flags: the first to fit on the photos the model will see, the
second to report both populations.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from qc_model.catalog import Design, default_catalog_dir, load_catalog
from qc_model.gate import check_photo
from qc_model.inference import read_image
from qc_model.manifest import Record

_DESIGNS: dict[str, Design] | None = None


def _design(design_id: str | None) -> Design | None:
    global _DESIGNS
    if _DESIGNS is None:
        _DESIGNS = load_catalog(default_catalog_dir())
    return _DESIGNS.get(design_id or "")


def _passes(job: tuple[Path, str | None]) -> bool:
    path, design_id = job
    return bool(check_photo(read_image(path), _design(design_id)).passed)


def gate_passed(
    records: Sequence[Record], root: Path, workers: int = 1, desc: str = "photo gate"
) -> NDArray[np.bool_]:
    """(N,) True where the photo gate (default limits, the record's catalog design) passes."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    jobs = [(root / r.image, r.design_id) for r in records]
    if workers > 1 and len(jobs) > workers:
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("forkserver")) as pool:
            flags = list(tqdm(pool.map(_passes, jobs, chunksize=8), total=len(jobs), desc=desc))
    else:
        flags = [_passes(j) for j in tqdm(jobs, desc=desc, unit="photo")]
    return np.asarray(flags, np.bool_)
