"""`kito anomaly update`: refresh one design's bank from newly accepted good photos.

The old bank's rows and the new photos' cells form one pool; the coreset of the pool is the new
bank, so normal variation seen before is kept and new variation (a new batch of beads, a new
workshop's lighting) is added, at the same bounded size. Every fifth new photo is held out and,
when there are enough, the design's calibration is fitted again on them; otherwise it is kept.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from qc_model.anomaly import (
    ANOMALY_BANKS,
    ANOMALY_META,
    ANOMALY_ONNX,
    AnomalyMeta,
    AnomalyModel,
    bank_key,
    image_score,
    nearest_distances,
)
from qc_model.errors import DataError
from qc_model.manifest import Manifest
from training.anomaly.coreset import kcenter_coreset, random_rows
from training.anomaly.fit import Extractor, FitOptions, calibrate, design_of, is_good
from training.anomaly.package import attach, staged


def update_design(
    package: Path,
    manifest_path: Path,
    design: str,
    out: Path,
    opts: FitOptions | None = None,
) -> AnomalyMeta:
    """A copy of `package` at `out` whose bank for `design` also covers the manifest's good
    photos of it (every split: these photos were accepted after the model was made)."""
    from training.predict import resolve_root

    opts = opts or FitOptions()
    old = AnomalyModel(package, threads=2)
    meta = old.meta
    if design not in meta.designs:
        raise DataError(
            f"{package}: no bank of its own for design {design!r} (has: "
            f"{', '.join(sorted(meta.designs)) or 'none'}); fit one with kito anomaly fit"
        )
    manifest = Manifest.read(manifest_path)
    photos = [r for r in manifest.records if is_good(r) and design_of(r) == design]
    if not photos:
        raise DataError(f"{manifest_path}: no good photos of design {design!r}")
    held = photos[4::5] if len(photos) >= 5 else []
    new = [r for i, r in enumerate(photos) if not (len(photos) >= 5 and i % 5 == 4)]
    bank_meta = meta.designs[design]
    key = bank_key("design", design)
    ex = Extractor(package / ANOMALY_ONNX, resolve_root(manifest_path, None), meta.config)
    rng = np.random.default_rng(opts.seed)
    share = max(1, math.ceil(opts.pool_size / len(new)))
    parts = [old.banks[key]]
    for r in new:
        c = ex.cells(r, bank_meta.px_per_mm)
        parts.append(c[random_rows(len(c), share, rng)])
    pool = np.concatenate(parts).astype(np.float32)
    size = max(opts.bank_size, len(old.banks[key]))
    bank = np.ascontiguousarray(pool[kcenter_coreset(pool, size, seed=opts.seed, progress=True)])
    update: dict[str, object] = {"photos": bank_meta.photos + len(new), "patches": len(bank)}
    if len(held) >= opts.min_calibration:
        sq = (bank * bank).sum(1)
        top_k = meta.config.top_k
        cells = [ex.cells(r, bank_meta.px_per_mm) for r in held]
        scores = [image_score(nearest_distances(c, bank, sq), top_k) for c in cells]
        mu, sigma = calibrate(scores)
        update |= {"calibration_photos": len(held), "log_mu": mu, "log_sigma": sigma}
    with staged(out, package) as tmp:
        (tmp / ANOMALY_ONNX).write_bytes((package / ANOMALY_ONNX).read_bytes())
        arrays = {k: v.astype(np.float16) for k, v in old.banks.items()}
        arrays[key] = bank.astype(np.float16)
        np.savez(tmp / ANOMALY_BANKS, **arrays)
        from qc_model.manifest import sha256_file

        designs = {**meta.designs, design: bank_meta.model_copy(update=update)}
        updates = {"designs": designs, "banks_sha256": sha256_file(tmp / ANOMALY_BANKS)}
        history = [*meta.training.get("updates", []), {"design": design, "photos": len(new)}]
        updates["training"] = {**meta.training, "updates": history}
        new_meta = AnomalyMeta.model_validate({**meta.model_dump(), **updates})
        text = new_meta.model_dump_json(indent=2) + "\n"
        (tmp / ANOMALY_META).write_text(text, encoding="utf-8")
        if (tmp / "package.json").is_file():
            attach(tmp, new_meta)
    return new_meta
