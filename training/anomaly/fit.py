"""Fit the anomaly model from a manifest's good photos: banks per design, families, calibration.

Bank photos come from `bank_splits` (train), calibration photos from `calibration_split`
(val); a design with too few held-out good photos there holds out every fifth of its bank
photos instead, so its threshold is never set on photos its bank holds.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from qc_model.anomaly import (
    NO_DESIGN,
    AnomalyConfig,
    BankMeta,
    image_score,
    nearest_distances,
    open_session,
    run_extractor,
)
from qc_model.anomaly_input import photo_scale, prepare_input
from qc_model.anomaly_search import pca_projection
from qc_model.errors import DataError
from qc_model.inference import read_image
from qc_model.manifest import GOOD, Record
from training.anomaly.coreset import bank_rows, random_rows

SIGMA_FLOOR = 0.05  # log-score spread below this is too few photos, not a real certainty


def is_good(r: Record) -> bool:
    return not r.labels or r.labels == [GOOD]


def design_of(r: Record) -> str:
    return r.design_id or NO_DESIGN


@dataclass(frozen=True)
class FitOptions:
    config: AnomalyConfig = field(default_factory=AnomalyConfig)
    bank_size: int = 8192  # rows per bank, bounding package size and serving time
    sampling: str = "coreset"  # how the bank's rows are drawn from the pool (coreset.bank_rows)
    proj_dim: int | None = None  # banks stored in their pool's top principal directions
    pool_size: int = 60_000  # patches drawn at random per bank before the coreset
    min_photos: int = 10  # fewer good photos: the design falls back to its family's bank
    min_calibration: int = 5  # fewer held-out good photos: hold out some bank photos
    false_hold: float = 0.02
    scale_photos: int = 20  # photos per design that set its px/mm
    seed: int = 0


@dataclass
class Fitted:
    bank: NDArray[np.float32]  # (N, d): in the projection's space when there is one
    meta: BankMeta
    projection: NDArray[np.float32] | None = None  # (D, d)


@dataclass
class Extractor:
    """The exported graph run on photos of one design at that design's scale."""

    onnx: Path
    root: Path
    cfg: AnomalyConfig
    session: Any = field(init=False)

    def __post_init__(self) -> None:
        self.session = open_session(self.onnx, 2)

    def cells(self, r: Record, px_per_mm: float | None) -> NDArray[np.float32]:
        """(n, D) the features of the cells that count in one photo."""
        image = read_image(self.root / r.image)
        c = self.cfg
        inp = prepare_input(
            image, px_per_mm=px_per_mm, max_side=c.max_side, pad_to=c.pad_to, margin=c.crop_margin
        )
        feats, counted = run_extractor(self.session, inp, c)
        return feats[counted]

    def scale(self, records: list[Record]) -> float | None:
        """The design's px/mm: its photos' median, lowered so the crop fits max_side (None:
        its photos are not on the mat)."""
        scales, sides = [], []
        for r in records:
            image = read_image(self.root / r.image)
            loc, mat = photo_scale(image)
            if loc is not None and mat is not None:
                x0, y0, x1, y1 = loc.bbox
                side_px = max(x1 - x0, y1 - y0) * (1.0 + 2.0 * self.cfg.crop_margin)
                scales.append(mat.px_per_mm)
                sides.append(side_px / mat.px_per_mm)
        if len(scales) < max(1, len(records) // 2):
            return None
        return float(min(np.median(scales), self.cfg.max_side / np.percentile(sides, 90)))


def calibrate(scores: list[float]) -> tuple[float, float]:
    logs = np.log(np.maximum(np.asarray(scores, np.float64), 1e-12))
    return float(logs.mean()), max(float(logs.std(ddof=1)) if len(logs) > 1 else 0.0, SIGMA_FLOOR)


def build_bank(
    pool: NDArray[np.float32],
    calibration: list[NDArray[np.float32]],
    photos: int,
    px_per_mm: float | None,
    opts: FitOptions,
) -> Fitted:
    """Coreset of the pool (in the projection when asked for one), calibrated on the held-out
    photos' cells."""
    proj = None
    if opts.proj_dim is not None and opts.proj_dim < pool.shape[1]:
        proj = pca_projection(pool, opts.proj_dim)
        pool = np.ascontiguousarray(pool @ proj)
        calibration = [c @ proj for c in calibration]
    calibration = [c for c in calibration if len(c)]  # a photo with no cell near a piece
    if not calibration:
        raise DataError("no held-out good photo has a cell to score; nothing to calibrate on")
    rows = bank_rows(pool, opts.bank_size, opts.sampling, opts.seed)
    bank = np.ascontiguousarray(pool[rows])
    sq = (bank * bank).sum(1)
    scores = [image_score(nearest_distances(c, bank, sq), opts.config.top_k) for c in calibration]
    mu, sigma = calibrate(scores)
    meta = BankMeta(
        photos=photos,
        patches=len(bank),
        px_per_mm=px_per_mm,
        calibration_photos=len(scores),
        log_mu=mu,
        log_sigma=sigma,
    )
    return Fitted(bank, meta, proj)


def split_photos(
    records: list[Record], bank_splits: tuple[str, ...], calibration_split: str, opts: FitOptions
) -> tuple[list[Record], list[Record]]:
    bank = [r for r in records if r.split in bank_splits]
    held = [r for r in records if r.split == calibration_split]
    if len(held) < opts.min_calibration and len(bank) >= opts.min_photos + opts.min_calibration:
        held, bank = held + bank[4::5], [r for i, r in enumerate(bank) if i % 5 != 4]
    return bank, held


def pool_cells(
    ex: Any, records: list[Record], px: float | None, opts: FitOptions, desc: str
) -> NDArray[np.float32]:
    """At most pool_size random cells over the photos, an equal share from each."""
    rng = np.random.default_rng(opts.seed)
    share = max(1, math.ceil(opts.pool_size / max(1, len(records))))
    parts = []
    for r in tqdm(records, desc=desc, unit="photo", leave=False):
        c = ex.cells(r, px)
        parts.append(c[random_rows(len(c), share, rng)])
    if not parts:
        raise DataError(f"{desc}: no photos")
    return np.concatenate(parts).astype(np.float32)


def fit_banks(
    ex: Any,
    goods: list[Record],
    opts: FitOptions,
    bank_splits: tuple[str, ...] = ("train",),
    calibration_split: str = "val",
    families: dict[str, str] | None = None,
) -> tuple[dict[str, Fitted], dict[str, Fitted], dict[str, str]]:
    """(design banks, family banks, design -> family for designs that fall back)."""
    by_design: dict[str, list[Record]] = defaultdict(list)
    for r in goods:
        by_design[design_of(r)].append(r)
    designs: dict[str, Fitted] = {}
    small: dict[str, list[Record]] = {}
    for name, records in sorted(by_design.items()):
        bank_photos, held = split_photos(records, bank_splits, calibration_split, opts)
        if len(bank_photos) < opts.min_photos or not held:
            small[name] = records
            continue
        px = ex.scale(bank_photos[: opts.scale_photos])
        pool = pool_cells(ex, bank_photos, px, opts, f"bank {name}")
        cal = [ex.cells(r, px) for r in tqdm(held, desc=f"calibrate {name}", leave=False)]
        designs[name] = build_bank(pool, cal, len(bank_photos), px, opts)
    family_of = {d: f for d, f in (families or {}).items() if d not in designs}
    fams: dict[str, Fitted] = {}
    for fam in sorted(set(family_of.values())):
        members = [r for d, rs in by_design.items() if (families or {}).get(d) == fam for r in rs]
        bank_photos, held = split_photos(members, bank_splits, calibration_split, opts)
        if len(bank_photos) < opts.min_photos or not held:
            continue
        px = ex.scale(bank_photos[: opts.scale_photos])
        pool = pool_cells(ex, bank_photos, px, opts, f"family {fam}")
        cal = [ex.cells(r, px) for r in held]
        fams[fam] = build_bank(pool, cal, len(bank_photos), px, opts)
    return designs, fams, {d: f for d, f in family_of.items() if f in fams}
