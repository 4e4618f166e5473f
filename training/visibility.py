"""Can the photo show the labelled defect? Each defect measured against the photo's twin.

For every visual defect label of a synthetic data set (`kito data synth`), the photo is rendered
again without that defect: the renderer draws every photo from seeds, and a defect's own draws
come from a seed of their own, so the twin differs from the photo only where the defect is. The
defect's visibility is the number of pixels where the two differ by CIE76 ΔE >= 6 (a
difference an attentive observer sees; ~2.3 is the just-noticeable one). `kito data visible`
(training.visible_labels) relabels a set by it; research.visibility_report sets a package's
misses and holds against it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from qc_model.errors import DataError
from qc_model.manifest import Manifest, Record
from qc_model.taxonomy import VISUAL_DEFECTS

VISIBLE_DE = 6.0


def cie_lab(bgr: NDArray[np.uint8]) -> NDArray[np.float32]:
    return np.asarray(cv2.cvtColor(bgr.astype(np.float32) / 255.0, cv2.COLOR_BGR2LAB))


class TwinRenderer:
    """Renders a `kito data synth` record again, with or without some of its defects."""

    def __init__(self, data: Path) -> None:
        from qc_model.catalog import default_catalog_dir
        from training.synth.designs import load_designs

        self.manifest = Manifest.read(data / "manifest.jsonl")
        recipe = self.manifest.header.recipe
        if recipe.get("generator") != "training.synth":
            raise DataError(
                f"{data}: not made by kito data synth; its photos cannot be rendered again"
            )
        self.options = recipe["options"]
        # The designs as generated.
        self.designs = load_designs(default_catalog_dir(), tuple(self.options["designs"]) or None)

    def render(self, r: Record, without: frozenset[str] = frozenset()) -> NDArray[np.uint8]:
        """The record's photo (BGR), with the defects in `without` left out of every piece."""
        from training.synth.generate import _design_for
        from training.synth.photo import make_item, render_photo

        o = self.options
        piece, shot = divmod(int(r.id.rsplit("-", 1)[1]), int(o["photos_per_piece"]))
        design = _design_for(piece, self.designs, int(o["seed"]))
        if design.id != r.design_id:
            raise DataError(f"{r.id}: renders as {design.id}, recorded as {r.design_id}")
        item = make_item(design, int(o["seed"]), piece, float(o["defect_rate"]))
        if without:
            pieces = tuple(dataclasses.replace(p, defects=p.defects - without) for p in item.pieces)
            item = dataclasses.replace(item, pieces=pieces)
        args = (int(o["seed"]), piece, shot, int(o["size"]), float(o["difficulty"]))
        return render_photo(item, *args, tuple(o["force_capture"])).image


_TWINS: TwinRenderer | None = None  # one per worker process (label_visibility)


def _open_twins(data: Path) -> None:
    global _TWINS
    _TWINS = TwinRenderer(data)


def _record_rows(r: Record, delta_e: float = VISIBLE_DE) -> list[dict[str, Any]]:
    """One row per visual defect label of `r`: pixels its defect changes by ΔE >= `delta_e`."""
    assert _TWINS is not None
    photo = cie_lab(_TWINS.render(r))
    rows = []
    for label in sorted(set(r.labels) & set(VISUAL_DEFECTS)):
        diff = np.linalg.norm(photo - cie_lab(_TWINS.render(r, frozenset({label}))), axis=2)
        rows.append(
            {
                "id": r.id,
                "label": label,
                "design": r.design_id,
                "capture": r.capture,
                "mask_px": int(r.meta.get("defect_px", {}).get(label, 0)),
                "visible_px": int((diff >= delta_e).sum()),
            }
        )
    return rows


def label_visibility(
    data: Path, workers: int = 1, delta_e: float = VISIBLE_DE
) -> list[dict[str, Any]]:
    """One row per (photo, visual defect label): pixels changed by the defect at ΔE >=
    `delta_e` (default 6), in manifest order; `workers` processes render the twins."""
    import functools
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    twins = TwinRenderer(data)  # refuses data the renderer did not make, before any work
    records = [r for r in twins.manifest.records if set(r.labels) & set(VISUAL_DEFECTS)]
    if workers > 1 and len(records) > workers:
        ctx = mp.get_context("forkserver")
        with ProcessPoolExecutor(
            workers, mp_context=ctx, initializer=_open_twins, initargs=(data,)
        ) as pool:
            done = pool.map(functools.partial(_record_rows, delta_e=delta_e), records, chunksize=4)
            per = list(tqdm(done, total=len(records), desc="twins", unit="photo"))
    else:
        global _TWINS
        _TWINS = twins  # the renderer already opened above: no second manifest read
        per = [_record_rows(r, delta_e) for r in tqdm(records, desc="twins", unit="photo")]
    return [row for rows in per for row in rows]
