"""`kito anomaly fit / update`: write the anomaly model into a package (or on its own).

The files (anomaly.onnx, anomaly_banks.npz, anomaly.json) are the same either way. Added to a
copy of a model package, package.json (and its copy embedded in model.onnx) gains an `anomaly`
entry with anomaly.json's checksum, and the finished folder must pass `load_package` before it
is renamed into place. Banks are stored as float16: half the size, and a nearest-neighbour
distance that moves by less than the spread between good photos.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from qc_model.anomaly import (
    ANOMALY_BANKS,
    ANOMALY_META,
    ANOMALY_ONNX,
    SOURCE_BRANCH,
    SOURCE_EXTRACTOR,
    AnomalyMeta,
    AnomalyModel,
    bank_key,
    projection_key,
)
from qc_model.anomaly_ref import AnomalyRef
from qc_model.errors import DataError
from qc_model.manifest import Manifest, Record, sha256_file
from qc_model.package import MODEL_FILE, SURFACE_FILE, read_meta
from training.anomaly.coreset import SAMPLINGS
from training.anomaly.fit import Extractor, FitOptions, Fitted, design_of, fit_banks, is_good


def catalog_families(catalog_dir: Path | None) -> dict[str, str]:
    """design id -> "piece_type/material" for every design of the catalog."""
    from qc_model.catalog import default_catalog_dir, load_catalog

    designs = load_catalog(catalog_dir or default_catalog_dir())
    return {d: f"{x.piece_type}/{x.material}" for d, x in designs.items()}


def save_banks(path: Path, banks: dict[str, Any], projections: dict[str, Any]) -> None:
    """Banks as float16 (half the size; a distance moves by less than the spread between good
    photos), projections as float32 (they multiply every patch)."""
    arrays = {k: np.asarray(v, np.float16) for k, v in banks.items()}
    arrays |= {projection_key(k): np.asarray(p, np.float32) for k, p in projections.items()}
    np.savez(path, **arrays)


def write_anomaly(
    folder: Path,
    designs: dict[str, Fitted],
    families: dict[str, Fitted],
    family_of: dict[str, str],
    opts: FitOptions,
    extractor: dict[str, Any],
    feature_dim: int,
    training: dict[str, Any],
    source: str = SOURCE_EXTRACTOR,
) -> AnomalyMeta:
    """anomaly_banks.npz and anomaly.json beside an anomaly.onnx (source "extractor") or the
    surface.onnx with cell features (source "branch") already in `folder`."""
    if not designs and not families:
        raise DataError(
            f"no design has {opts.min_photos} good photos in the bank splits and a held-out "
            "good photo to calibrate on; nothing to fit"
        )
    fitted = {bank_key("design", d): f for d, f in designs.items()}
    fitted |= {bank_key("family", k): f for k, f in families.items()}
    save_banks(
        folder / ANOMALY_BANKS,
        {k: f.bank for k, f in fitted.items()},
        {k: f.projection for k, f in fitted.items() if f.projection is not None},
    )
    meta = AnomalyMeta(
        config=opts.config,
        feature_dim=feature_dim,
        extractor=extractor,
        source=source,
        onnx_sha256=sha256_file(folder / ANOMALY_ONNX) if source == SOURCE_EXTRACTOR else None,
        branch_sha256=sha256_file(folder / SURFACE_FILE) if source == SOURCE_BRANCH else None,
        banks_sha256=sha256_file(folder / ANOMALY_BANKS),
        designs={d: f.meta for d, f in designs.items()},
        families={k: f.meta for k, f in families.items()},
        family_of=family_of,
        false_hold=opts.false_hold,
        training=training,
    )
    (folder / ANOMALY_META).write_text(meta.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return meta


@contextmanager
def staged(out: Path, base: Path | None) -> Iterator[Path]:
    """A hidden folder beside `out` holding a copy of `base` (if given); renamed to `out` only
    when the block ends without error and what it holds loads as the service would load it.
    `out` may be `base` itself: it is then replaced, only once the new folder is complete."""
    replace = out.exists() and base is not None and out.resolve() == base.resolve()
    if out.exists() and not replace:
        raise DataError(f"{out}: already exists; choose a new package folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        if base is not None:
            for f in base.iterdir():
                if f.is_file() and f.name not in (ANOMALY_META, ANOMALY_ONNX, ANOMALY_BANKS):
                    shutil.copyfile(f, tmp / f.name)
        yield tmp
        if (tmp / MODEL_FILE).is_file():
            from qc_model.package import load_package

            load_package(tmp, threads=1)
        else:
            AnomalyModel(tmp, threads=1)
        tmp.chmod(0o755)
        if replace:
            old = out.with_name(f".{out.name}.old-{tmp.name.rsplit('-', 1)[-1]}")
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def attach(folder: Path, meta: AnomalyMeta) -> None:
    """Point the package.json in `folder` (and model.onnx's copy) at its anomaly model."""
    from training.export import finish_package

    pkg = read_meta(folder)
    ref = AnomalyRef(
        meta_sha256=sha256_file(folder / ANOMALY_META),
        designs=sorted(meta.designs),
        fallback=sorted(meta.family_of),
    )
    finish_package(folder, pkg.model_copy(update={"anomaly": ref}))


def fit_anomaly(
    manifest_path: Path,
    out: Path,
    base: Path | None = None,
    designs: Sequence[str] | None = None,
    opts: FitOptions | None = None,
    bank_splits: tuple[str, ...] = ("train",),
    calibration_split: str = "val",
    catalog_dir: Path | None = None,
    stages: tuple[int, ...] = (2, 4),
    judged_only: bool = False,
    source: str = "auto",
) -> AnomalyMeta:
    """Fit from the manifest's good photos and write the model (see the module docstring);
    `judged_only`: only the photos the photo gate passes, the only ones the service scores;
    `source` "branch": the features are the base package's surface branch's cells
    (training/anomaly/branch_source.py), "extractor": the ImageNet trunk's (anomaly.onnx),
    "auto": the branch's when `base` has a tiled branch, else the extractor's."""
    from training.predict import resolve_root

    opts = opts or FitOptions()
    if source == "auto":
        sm = read_meta(base).surface if base is not None else None
        tiled = sm is not None and sm.config.tile is not None
        source = SOURCE_BRANCH if tiled else SOURCE_EXTRACTOR
    if source not in (SOURCE_EXTRACTOR, SOURCE_BRANCH):
        raise DataError(f"unknown feature source {source!r}: 'auto', 'extractor' or 'branch'")
    if opts.sampling not in SAMPLINGS:
        raise DataError(f"unknown sampling {opts.sampling!r}: one of {', '.join(SAMPLINGS)}")
    if source == SOURCE_BRANCH and base is None:
        raise DataError("--source branch reads a package's surface branch: give --package")
    if base is not None:
        read_meta(base)  # a clear error before minutes of fitting
    manifest = Manifest.read(manifest_path)
    root = resolve_root(manifest_path, None)
    goods, families = good_photos(manifest, manifest_path, root, designs, catalog_dir, judged_only)
    with staged(out, base) as tmp:
        ex, extractor, dim, opts = _extractor(tmp, root, opts, stages, source)
        own, fams, family_of = fit_banks(ex, goods, opts, bank_splits, calibration_split, families)
        training = {
            "manifest": str(manifest_path),
            "manifest_version": manifest.header.version,
            "bank_splits": list(bank_splits),
            "calibration_split": calibration_split,
            "judged_only": judged_only,
            "bank_size": opts.bank_size,
            "sampling": opts.sampling,
            "proj_dim": opts.proj_dim,
            "pool_size": opts.pool_size,
            "min_photos": opts.min_photos,
            "seed": opts.seed,
        }
        meta = write_anomaly(tmp, own, fams, family_of, opts, extractor, dim, training, source)
        if base is not None:
            attach(tmp, meta)
    return meta


def _extractor(
    tmp: Path, root: Path, opts: FitOptions, stages: tuple[int, ...], source: str
) -> tuple[Any, dict[str, Any], int, FitOptions]:
    """(what gives each photo's cells, how it was made, feature dimension, options with the
    features' stride) for a fit in the staged folder `tmp`."""
    if source == SOURCE_BRANCH:
        from training.anomaly.branch_source import BranchExtractor, prepare_branch

        dim, stride, _ = prepare_branch(tmp)
        cfg = opts.config.model_copy(update={"stride": stride})
        about = {"branch": "the package's surface branch, its last layer's input per cell"}
        return BranchExtractor(tmp, root, dim), about, dim, replace(opts, config=cfg)
    from training.anomaly.features import PatchFeatures, export_extractor

    module = PatchFeatures(stages)
    export_extractor(module, tmp / ANOMALY_ONNX)
    dim, stride = module.dims()
    cfg = opts.config.model_copy(update={"stride": stride})
    about = {"trunk": "tf_efficientnet_lite0 (ImageNet)", "stages": list(stages)}
    return Extractor(tmp / ANOMALY_ONNX, root, cfg), about, dim, replace(opts, config=cfg)


def good_photos(
    manifest: Manifest,
    manifest_path: Path,
    root: Path,
    designs: Sequence[str] | None,
    catalog_dir: Path | None,
    judged_only: bool,
) -> tuple[list[Record], dict[str, str]]:
    """(the good photos to learn from, design -> family for the designs concerned)."""
    goods = [r for r in manifest.records if is_good(r)]
    if designs:
        unknown = sorted(set(designs) - {design_of(r) for r in goods})
        if unknown:
            raise DataError(f"{manifest_path}: no good photos of design(s) {', '.join(unknown)}")
        goods = [r for r in goods if design_of(r) in designs]
    if not goods:
        raise DataError(f"{manifest_path}: no good photos to learn from")
    families = catalog_families(catalog_dir) if any(r.design_id for r in goods) else {}
    if designs:
        families = {d: f for d, f in families.items() if d in designs}
    if judged_only:
        from training.judged import gate_passed

        passed = gate_passed(goods, root, 1, "photo gate (good photos)")
        goods = [r for r, ok in zip(goods, passed, strict=True) if ok]
        if not goods:
            raise DataError(f"{manifest_path}: the photo gate passes none of the good photos")
    return goods, families
