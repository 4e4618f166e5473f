"""`kito anomaly update` and `kito retrain`: refresh design banks from newly accepted good photos.

The old bank's rows and the new photos' cells form one pool; the coreset of the pool is the new
bank, so normal variation seen before is kept and new variation (a new batch of beads, a new
workshop's lighting) is added, at the same bounded size. A bank stored in a projection keeps
it: the new cells are projected as the serving side projects them. Every fifth new photo is
held out and, when there are enough, the design's calibration is fitted again on them;
otherwise it is kept.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from qc_model.anomaly import (
    ANOMALY_BANKS,
    ANOMALY_META,
    ANOMALY_ONNX,
    SOURCE_BRANCH,
    AnomalyMeta,
    AnomalyModel,
    BankMeta,
    bank_key,
    image_score,
    nearest_distances,
)
from qc_model.errors import DataError
from qc_model.manifest import Manifest, Record, sha256_file
from qc_model.package import SURFACE_FILE
from training.anomaly.coreset import bank_rows, random_rows
from training.anomaly.fit import Extractor, FitOptions, calibrate, design_of, is_good
from training.anomaly.package import attach, save_banks, staged


def _extractor(package: Path, target: Path, meta: AnomalyMeta, root: Path) -> Any:
    """What gives the new photos' cells: the model's own extractor, or (source "branch") the
    branch of `target`, the package the refreshed model goes into, which must be the very
    branch the banks were filled from."""
    if meta.source != SOURCE_BRANCH:
        return Extractor(package / ANOMALY_ONNX, root, meta.config)
    from training.anomaly.branch_source import BranchExtractor

    if why := branch_mismatch(meta, target):
        raise DataError(why)
    return BranchExtractor(target, root, meta.feature_dim)


def branch_mismatch(meta: AnomalyMeta, target: Path) -> str | None:
    """Why an anomaly model of source "branch" cannot go into the package `target` (its surface
    branch is not the one the banks were filled from); None: it can, or it reads no branch."""
    if meta.branch_sha256 is None:
        return None
    branch = target / SURFACE_FILE
    if branch.is_file() and sha256_file(branch) == meta.branch_sha256:
        return None
    return (
        f"{target}: its surface branch is not the one the anomaly banks were filled from; "
        "fit them again (kito anomaly fit --source branch)"
    )


def _refreshed(
    old: AnomalyModel, ex: Any, design: str, photos: list[Record], opts: FitOptions
) -> tuple[np.ndarray, dict[str, object]]:
    """(the design's new bank, the BankMeta fields that change)."""
    held = photos[4::5] if len(photos) >= 5 else []
    new = [r for i, r in enumerate(photos) if not (len(photos) >= 5 and i % 5 == 4)]
    bank_meta = old.meta.designs[design]
    key = bank_key("design", design)
    rng = np.random.default_rng(opts.seed)
    share = max(1, math.ceil(opts.pool_size / max(1, len(new))))
    parts = [old.banks[key]]
    for r in new:
        c = old.project(ex.cells(r, bank_meta.px_per_mm), key)
        parts.append(c[random_rows(len(c), share, rng)])
    pool = np.concatenate(parts).astype(np.float32)
    size = max(opts.bank_size, len(old.banks[key]))
    sampling = str(old.meta.training.get("sampling", opts.sampling))  # as the bank was drawn
    bank = np.ascontiguousarray(pool[bank_rows(pool, size, sampling, opts.seed)])
    update: dict[str, object] = {"photos": bank_meta.photos + len(new), "patches": len(bank)}
    if len(held) >= opts.min_calibration:
        sq = (bank * bank).sum(1)
        top_k = old.meta.config.top_k
        cells = [old.project(ex.cells(r, bank_meta.px_per_mm), key) for r in held]
        cells = [c for c in cells if len(c)]  # a photo with no cell near a piece
        scores = [image_score(nearest_distances(c, bank, sq), top_k) for c in cells]
        mu, sigma = calibrate(scores)
        update |= {"calibration_photos": len(held), "log_mu": mu, "log_sigma": sigma}
    return bank, update


def update_designs(
    package: Path,
    manifest_path: Path,
    designs: Sequence[str] | None,
    out: Path,
    opts: FitOptions | None = None,
    base: Path | None = None,
) -> tuple[AnomalyMeta, dict[str, int]]:
    """A copy of `base` (default: `package`) at `out` with `package`'s anomaly model, each bank
    of `designs` (None: every design with a bank and good photos in the manifest) also covering
    the manifest's good photos of it (every split: accepted after the model was made).
    Returns the new meta and the new photos per refreshed design."""
    from training.predict import resolve_root

    opts = opts or FitOptions()
    old = AnomalyModel(package, threads=2)
    meta = old.meta
    manifest = Manifest.read(manifest_path)
    goods = [r for r in manifest.records if is_good(r)]
    if designs is None:
        designs = sorted({design_of(r) for r in goods} & set(meta.designs))
    for design in designs:
        if design not in meta.designs:
            raise DataError(
                f"{package}: no bank of its own for design {design!r} (has: "
                f"{', '.join(sorted(meta.designs)) or 'none'}); fit one with kito anomaly fit"
            )
        if not any(design_of(r) == design for r in goods):
            raise DataError(f"{manifest_path}: no good photos of design {design!r}")
    ex = _extractor(package, base or package, meta, resolve_root(manifest_path, None))
    banks = dict(old.banks)
    new_designs: dict[str, BankMeta] = dict(meta.designs)
    added: dict[str, int] = {}
    for design in designs:
        photos = [r for r in goods if design_of(r) == design]
        key = bank_key("design", design)
        banks[key], update = _refreshed(old, ex, design, photos, opts)
        new_designs[design] = meta.designs[design].model_copy(update=update)
        added[design] = len(photos) - (len(photos) // 5 if len(photos) >= 5 else 0)
    with staged(out, base or package) as tmp:
        if not old.from_branch:
            (tmp / ANOMALY_ONNX).write_bytes((package / ANOMALY_ONNX).read_bytes())
        save_banks(tmp / ANOMALY_BANKS, banks, old.projections)
        history = [
            *meta.training.get("updates", []),
            *({"design": d, "photos": n} for d, n in added.items()),
        ]
        updates = {
            "designs": new_designs,
            "banks_sha256": sha256_file(tmp / ANOMALY_BANKS),
            "training": {**meta.training, "updates": history},
        }
        new_meta = AnomalyMeta.model_validate({**meta.model_dump(), **updates})
        text = new_meta.model_dump_json(indent=2) + "\n"
        (tmp / ANOMALY_META).write_text(text, encoding="utf-8")
        if (tmp / "package.json").is_file():
            attach(tmp, new_meta)
    return new_meta, added


def update_design(
    package: Path,
    manifest_path: Path,
    design: str,
    out: Path,
    opts: FitOptions | None = None,
) -> AnomalyMeta:
    """A copy of `package` at `out` whose bank for `design` also covers the manifest's good
    photos of it."""
    return update_designs(package, manifest_path, [design], out, opts)[0]
