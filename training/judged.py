"""Which photos the service would judge: those the photo gate passes.

The service never asks the model about a photo the gate refuses; the artisan is asked for a
retake instead (qc_model.verdict.decide). Thresholds chosen for a defect recall on every
validation photo are pulled down by defects that a blurred, far or cut-off photo cannot show,
and every good piece pays for that in false holds. `kito surface attach --judged-only` and
`kito eval` therefore use these flags: the first to fit on the photos the model will see, the
second to report both populations; `kito thresholds` (training.thresholds) chooses a package's
thresholds again on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from qc_model.catalog import Design, default_catalog_dir, load_catalog
from qc_model.decode import SERVICE_DECODE_LONG_SIDE, reduce_whole
from qc_model.gate import check_photo, decode_long_side
from qc_model.inference import read_image
from qc_model.manifest import Record

if TYPE_CHECKING:
    from training.calibrate import ThresholdChoice

_DESIGNS: dict[str, Design] | None = None


def _design(design_id: str | None) -> Design | None:
    global _DESIGNS
    if _DESIGNS is None:
        _DESIGNS = load_catalog(default_catalog_dir())
    return _DESIGNS.get(design_id or "")


def _passes(job: tuple[Path, str | None]) -> bool:
    """The gate on the photo as the service measures it: reduced like its decoder reduces a
    large JPEG (to KITO_DECODE_LONG_SIDE's default, more for a tight design), whether or not
    the package has a surface branch (serving.inspection.model_inspector)."""
    path, design_id = job
    design = _design(design_id)
    image, _ = reduce_whole(
        read_image(path), decode_long_side(design, floor=SERVICE_DECODE_LONG_SIDE)
    )
    return bool(check_photo(image, design).passed)


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


def fit_flags(
    records: Sequence[Record], root: Path, workers: int, judged_only: bool, source: Path
) -> NDArray[np.bool_]:
    """Which val photos a fit uses: all, or with `judged_only` those the gate passes (a
    DataError naming `source` when it passes none)."""
    if not judged_only:
        return np.ones(len(records), np.bool_)
    flags = gate_passed(records, root, workers, "photo gate (val)")
    if not flags.any():
        from qc_model.errors import DataError

        raise DataError(
            f"{source}: the photo gate passes none of the {len(records)} val photos; nothing "
            "to fit on (leave out --judged-only)"
        )
    return flags


def operating_metrics(
    base: dict[str, Any],
    choice: ThresholdChoice,
    target_recall: float,
    probs: NDArray[np.floating],
    y: NDArray[np.bool_],
    classes: Sequence[str],
    *,
    judged_only: bool,
    photos_in_split: int,
) -> dict[str, Any]:
    """A package's `metrics` after its thresholds were chosen on `probs`/`y` (the photos fitted)."""
    from training.metrics import any_defect, macro_f1

    t = [choice.thresholds[c].threshold for c in classes]
    return {
        **base,
        "recall_level": choice.recall_level,
        "target_recall": target_recall,
        "untuned_classes": choice.untuned,
        "val": {
            "photos": len(y),
            "judged_only": judged_only,
            "photos_in_split": photos_in_split,
            "macro_f1": macro_f1(probs, y, t),
            "any_defect": any_defect(probs, y, t, classes).as_dict(),
        },
    }
