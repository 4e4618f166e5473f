"""Fit a package's design references (qc_model.identity) from a manifest's photos.

Each photo is seen as the service sees it: reduced like its decoder reduces a large photo, the
photo gate run with the record's catalog design, and only photos the gate passes with a mat are
kept (the service checks no other). Their descriptors, per declared design, become the
references; defect labels do not matter (a scratched piece is still its design).

The threshold: every reference photo is scored against the references with its own piece's
photos left out (a piece's second photo is no evidence of its design), declared as its true
design; the ratio's (1 - false_flag) quantile is the threshold, so about `false_flag` of
correctly declared photos go to review. Reported with it: how many of the same photos declared
as each other design would be caught (`fitted_on`), an optimistic view (references of the same
data) that bench/bench_design_mismatch.py replaces with held-out photos.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from qc_model.anomaly import ANOMALY_BANKS, ANOMALY_META, ANOMALY_ONNX
from qc_model.catalog import default_catalog_dir, load_catalog
from qc_model.decode import SERVICE_DECODE_LONG_SIDE, reduce_whole
from qc_model.decode_plan import carried_up
from qc_model.errors import DataError
from qc_model.gate import check_photo, decode_long_side
from qc_model.identity import (
    EMBEDDING_NAME,
    K_NEAREST,
    REFS_FILE,
    SIZE_WEIGHT,
    IdentityRef,
    descriptor,
    design_distances,
    load_refs,
    mismatch_ratio,
    piece_size_mm,
    save_refs,
)
from qc_model.inference import read_image
from qc_model.manifest import Manifest, Record, sha256_file
from qc_model.package import MODEL_FILE, open_session, read_meta
from qc_model.preprocess import PreprocessConfig, crop_to_piece, normalize
from training.identity_graph import add_embedding_output


@dataclass(frozen=True)
class Described:
    design: str
    piece: str
    desc: NDArray[np.float32]


class Describer:
    """Photo -> descriptor as the service computes it (None: the gate refuses the photo, or
    it has no mat with two markers)."""

    def __init__(self, model: Path, preprocess: PreprocessConfig, size_weight: float) -> None:
        self.session = open_session(model, threads=2)
        names = {o.name for o in self.session.get_outputs()}
        if EMBEDDING_NAME not in names:
            raise DataError(f"{model}: no '{EMBEDDING_NAME}' output")
        self.preprocess, self.size_weight = preprocess, size_weight
        self.designs = load_catalog(default_catalog_dir())
        self.size_ms: list[float] = []  # CPU ms of each photo's piece_size_mm (benchmarks)

    def __call__(self, path: Path, design_id: str | None) -> NDArray[np.float32] | None:
        design = self.designs.get(design_id or "")
        image = read_image(path)
        copy, factor = reduce_whole(image, decode_long_side(design, floor=SERVICE_DECODE_LONG_SIDE))
        gate = check_photo(copy, design)
        t0 = time.process_time()
        size = piece_size_mm(gate.location, gate.mat)
        self.size_ms.append((time.process_time() - t0) * 1e3)
        if not gate.passed or min(size) <= 0:
            return None
        loc, mat = carried_up(gate.location, gate.mat, factor, image.shape[:2])
        crop = crop_to_piece(image, self.preprocess, location=loc, mat=mat)
        x = normalize(crop.image, self.preprocess)[None]
        (emb,) = self.session.run([EMBEDDING_NAME], {"input": x})
        return descriptor(emb[0], size, self.size_weight)


def describe_records(
    describer: Describer, records: Sequence[Record], root: Path, desc: str = "design refs"
) -> list[Described]:
    out = []
    for r in tqdm(records, desc=desc, unit="photo"):
        if r.design_id is None:
            continue
        d = describer(root / r.image, r.design_id)
        if d is not None:
            out.append(Described(r.design_id, r.piece_id, d))
    return out


def held_out_ratios(
    rows: Sequence[Described], refs: dict[str, NDArray[np.float32]], k: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per photo: its ratio declared as its own design, and declared as each other design
    (flattened), with its own piece's rows left out of the references."""
    pieces = {d: [] for d in refs}  # type: dict[str, list[str]]
    for r in rows:
        pieces[r.design].append(r.piece)
    own, other = [], []
    for r in rows:
        keep = {d: m for d, m in refs.items()}
        mask = np.array([p != r.piece for p in pieces[r.design]])
        keep[r.design] = refs[r.design][mask]
        if len(keep[r.design]) == 0:
            continue
        dist = design_distances(keep, r.desc, k)
        own.append(mismatch_ratio(dist, r.design)[0])
        other += [mismatch_ratio(dist, d)[0] for d in dist if d != r.design]
    return np.asarray(own), np.asarray(other)


def fit_identity(
    base: Path,
    manifest_path: Path,
    out: Path,
    *,
    splits: Sequence[str] = ("train", "val"),
    false_flag: float = 0.01,
    min_refs: int = 5,
    k: int = K_NEAREST,
    size_weight: float = SIZE_WEIGHT,
    tap: str | None = None,
) -> IdentityRef:
    """Copy the package `base` to `out` (which may be `base`: replaced once the new one loads)
    with the embedding output and design references fitted on the manifest's photos (`tap`:
    the tensor the embedding pools, training.identity_graph's default when None)."""
    from training.anomaly.package import staged
    from training.package_io import finish_package

    if not 0.0 < false_flag < 1.0:
        raise DataError(f"--false-flag must be between 0 and 1, got {false_flag}")
    meta = read_meta(base)
    manifest = Manifest.read(manifest_path)
    root = manifest_path if manifest_path.is_dir() else manifest_path.parent
    records = [r for r in manifest.records if r.split in splits]
    if not records:
        raise DataError(f"{manifest_path}: no photos in split(s) {', '.join(splits)}")
    with staged(out, base) as tmp:
        for name in (ANOMALY_META, ANOMALY_ONNX, ANOMALY_BANKS):  # `staged` leaves them out
            if (base / name).is_file():
                shutil.copyfile(base / name, tmp / name)
        dims = add_embedding_output(tmp / MODEL_FILE, tap)
        rows = describe_records(
            Describer(tmp / MODEL_FILE, meta.preprocess, size_weight), records, root
        )
        refs = _refs(rows, min_refs, manifest_path)
        save_refs(tmp / REFS_FILE, refs)
        refs = load_refs((tmp / REFS_FILE).read_bytes(), dims)  # as served: float16
        own, other = held_out_ratios(rows, refs, k)
        threshold = float(np.quantile(own, 1.0 - false_flag))
        ref = IdentityRef(
            refs_sha256=sha256_file(tmp / REFS_FILE),
            designs=sorted(refs),
            dims=dims,
            k=k,
            size_weight=size_weight,
            threshold=threshold,
            false_flag=false_flag,
            min_refs=min_refs,
            references={d: len(v) for d, v in sorted(refs.items())},
            fitted_on=_summary(manifest, splits, len(records), own, other, threshold),
        )
        finish_package(tmp, meta.model_copy(update={"identity": ref}))
    return ref


def _refs(rows: Sequence[Described], min_refs: int, source: Path) -> dict[str, NDArray[np.float32]]:
    by: dict[str, list[NDArray[np.float32]]] = {}
    for r in rows:
        by.setdefault(r.design, []).append(r.desc)
    refs = {d: np.stack(v) for d, v in by.items() if len(v) >= min_refs}
    if len(refs) < 2:
        raise DataError(
            f"{source}: {len(refs)} design(s) with at least {min_refs} photos the gate passes; "
            "design references need two or more"
        )
    return refs


def _summary(
    manifest: Manifest,
    splits: Sequence[str],
    photos: int,
    own: NDArray[np.float64],
    other: NDArray[np.float64],
    threshold: float,
) -> dict[str, Any]:
    return {
        "data_version": manifest.header.version,
        "splits": list(splits),
        "photos": photos,
        "references_used": len(own),
        "flagged_declared_right": round(float(np.mean(own > threshold)), 4),
        "caught_declared_wrong": round(float(np.mean(other > threshold)), 4),
    }
