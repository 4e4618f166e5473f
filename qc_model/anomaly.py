"""The anomaly model: what each design's good photos look like, and how far a photo is from it.

PatchCore's recipe, per design: an ImageNet trunk's mid-level patch features (anomaly.onnx),
a bounded memory bank of the features of the design's good photos (anomaly_banks.npz), and
for a new photo each patch's distance to its nearest neighbour in the bank -> an anomaly map;
the image score is the mean of the `top_k` largest. Scores are calibrated per design on
held-out good photos (a log-normal tail), so `level` -- the estimated share of the design's
good photos that score lower -- means the same false-hold rate on every design. A design with
too few good photos of its own is scored against its family's bank (same piece type and
material), and the result says so. Numpy and onnxruntime only: serving imports this.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from qc_model.anomaly_input import AnomalyInput, piece_cells, prepare_input
from qc_model.anomaly_meta import (
    ANOMALY_BANKS,
    ANOMALY_META,
    ANOMALY_ONNX,
    FEATURES_INPUT,
    FEATURES_OUTPUT,
    NO_DESIGN,
    PROJECTION,
    SOURCE_BRANCH,
    SOURCE_EXTRACTOR,
    AnomalyConfig,
    AnomalyError,
    AnomalyMeta,
    BankMeta,
    FusedReview,
    ReviewChoice,
    read_anomaly_meta,
)
from qc_model.anomaly_search import image_score, level_of, nearest_distances, score_at_level
from qc_model.locate import PieceLocation
from qc_model.manifest import checksum_mismatch
from qc_model.mat import MatDetection
from qc_model.package_graphs import SURFACE_FILE
from qc_model.surface import pool_max

__all__ = [
    "ANOMALY_BANKS",
    "ANOMALY_META",
    "ANOMALY_ONNX",
    "FEATURES_INPUT",
    "FEATURES_OUTPUT",
    "NO_DESIGN",
    "SOURCE_BRANCH",
    "SOURCE_EXTRACTOR",
    "AnomalyConfig",
    "AnomalyError",
    "AnomalyMeta",
    "AnomalyModel",
    "AnomalyResult",
    "BankMeta",
    "FusedReview",
    "ReviewChoice",
    "bank_key",
    "image_score",
    "level_of",
    "nearest_distances",
    "projection_key",
    "read_anomaly_meta",
    "score_at_level",
]


@dataclass(frozen=True)
class AnomalyResult:
    """What the anomaly model says about one photo."""

    design: str | None
    bank: str  # "design:<id>", "family:<type>/<material>"
    fallback: bool  # scored against the family's bank: the design had too few good photos
    score: float  # mean of the top_k patch distances
    level: float  # 0..1, the estimated share of the bank's good photos scoring lower
    centred: float  # log(score) - the bank's log_mu: 0 at its good photos' median
    # (h, w) over `box`: each patch's distance / the bank's score at the review level, 0..1
    heatmap: NDArray[np.float32]
    box: tuple[int, int, int, int]  # the photo region the map covers


def bank_key(kind: str, name: str) -> str:
    return f"{kind}:{name}"


def projection_key(key: str) -> str:
    """The npz key of bank `key`'s projection (D, d): its rows are stored projected."""
    return f"{PROJECTION}:{key}"


def run_extractor(
    session: Any, inp: AnomalyInput, cfg: AnomalyConfig
) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    """(cells (gh, gw, D), counted (gh, gw)): the extractor's patch features of one input,
    and which cells lie near the piece and inside the unpadded image."""
    (f,) = session.run([FEATURES_OUTPUT], {FEATURES_INPUT: inp.tensor[None]})
    cells = np.ascontiguousarray(np.asarray(f[0], np.float32).transpose(1, 2, 0))
    gh, gw = cells.shape[:2]
    counted = piece_cells(inp.piece, (gh, gw), cfg.stride, cfg.piece_margin)
    inside = np.zeros((gh, gw), np.bool_)
    inside[: -(-inp.size[0] // cfg.stride), : -(-inp.size[1] // cfg.stride)] = True
    return cells, counted & inside


def _checked(path: Path, expected: str) -> Path:
    if not path.is_file():
        raise AnomalyError(f"{path.parent}: {ANOMALY_META} names {path.name}, which is missing")
    if why := checksum_mismatch(path, expected, ANOMALY_META):
        raise AnomalyError(why)
    return path


def open_session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own Fail/InvalidGraph/... types
        raise AnomalyError(f"{path}: onnxruntime cannot load it: {exc}".splitlines()[0]) from None


class AnomalyModel:
    """Load once (checksums, graph, banks); `score` one photo of a declared design."""

    def __init__(self, folder: Path | str, threads: int = 2) -> None:
        self.folder = Path(folder)
        self.meta = read_anomaly_meta(self.folder)
        m = self.meta
        self.session: Any = None
        if m.branch_sha256 is not None:  # the banks hold this branch's features, no other's
            _checked(self.folder / SURFACE_FILE, m.branch_sha256)
        if m.onnx_sha256 is not None and m.source != SOURCE_BRANCH:
            self.session = self._open_extractor(m.onnx_sha256, threads)
        with np.load(_checked(self.folder / ANOMALY_BANKS, m.banks_sha256)) as npz:
            arrays = {k: np.asarray(npz[k], np.float32) for k in npz.files}
        wanted = [bank_key("design", d) for d in m.designs]
        wanted += [bank_key("family", f) for f in m.families]
        missing = [k for k in wanted if k not in arrays]
        if missing:
            raise AnomalyError(f"{self.folder / ANOMALY_BANKS}: no bank {missing[0]!r}")
        # A bank stored in a projection (D, d) is searched there: cost grows with d, not D.
        self.projections = {
            k: arrays[projection_key(k)] for k in wanted if projection_key(k) in arrays
        }
        for k in wanted:
            p = self.projections.get(k)
            dim = m.feature_dim if p is None else p.shape[1]
            if p is not None and (p.ndim != 2 or p.shape[0] != m.feature_dim):
                raise AnomalyError(
                    f"{self.folder / ANOMALY_BANKS}: projection of {k!r} is not (D, d)"
                )
            if arrays[k].ndim != 2 or arrays[k].shape[1] != dim:
                raise AnomalyError(f"{self.folder / ANOMALY_BANKS}: bank {k!r} is not (N, {dim})")
        self.banks = {k: arrays[k] for k in wanted}
        self.bank_sq = {k: (b * b).sum(1) for k, b in self.banks.items()}

    def _open_extractor(self, sha256: str, threads: int) -> Any:
        session = open_session(_checked(self.folder / ANOMALY_ONNX, sha256), threads)
        ins, outs = session.get_inputs(), session.get_outputs()
        if [i.name for i in ins] != [FEATURES_INPUT] or FEATURES_OUTPUT not in {
            o.name for o in outs
        }:
            raise AnomalyError(
                f"{self.folder / ANOMALY_ONNX}: expected input '{FEATURES_INPUT}' and output "
                f"'{FEATURES_OUTPUT}'"
            )
        return session

    @property
    def from_branch(self) -> bool:
        """The features come from the package's surface branch run (`score_cells`), not from
        an extractor of its own (`score`)."""
        return self.meta.source == SOURCE_BRANCH

    def bank_for(self, design: str | None) -> tuple[str, BankMeta, bool] | None:
        """(bank key, its meta, fallback) for a photo of `design`; None: no bank for it."""
        m, name = self.meta, design if design is not None else NO_DESIGN
        if name in m.designs:
            return bank_key("design", name), m.designs[name], False
        family = m.family_of.get(name)
        if family is not None and family in m.families:
            return bank_key("family", family), m.families[family], True
        return None

    def covers(self, design: str | None) -> bool:
        return self.bank_for(design) is not None

    def prepare(
        self,
        image_bgr: NDArray[np.uint8],
        px_per_mm: float | None,
        location: PieceLocation | None = None,
        mat: MatDetection | None = None,
    ) -> AnomalyInput:
        c = self.meta.config
        return prepare_input(
            image_bgr,
            px_per_mm=px_per_mm,
            max_side=c.max_side,
            pad_to=c.pad_to,
            margin=c.crop_margin,
            location=location,
            mat=mat,
        )

    def features(self, inp: AnomalyInput) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
        return run_extractor(self.session, inp, self.meta.config)

    def distance_map(
        self, cells: NDArray[np.float32], counted: NDArray[np.bool_], key: str
    ) -> NDArray[np.float32]:
        """(gh, gw) nearest-neighbour distance of each counted cell to bank `key` (0 elsewhere)."""
        out = np.zeros(counted.shape, np.float32)
        out[counted] = nearest_distances(
            self.project(cells[counted], key), self.banks[key], self.bank_sq[key]
        )
        return out

    def project(self, cells: NDArray[np.float32], key: str) -> NDArray[np.float32]:
        """(n, D) patch features -> the space bank `key` is stored in."""
        p = self.projections.get(key)
        return cells if p is None else np.ascontiguousarray(cells @ p)

    def score(
        self,
        image_bgr: NDArray[np.uint8],
        design: str | None,
        location: PieceLocation | None = None,
        mat: MatDetection | None = None,
    ) -> AnomalyResult | None:
        """The photo against its design's bank (or its family's); None: no bank covers it."""
        if self.session is None:
            raise AnomalyError(f"{self.folder}: this anomaly model scores the branch's cells")
        found = self.bank_for(design)
        if found is None:
            return None
        key, bank, _ = found
        inp = self.prepare(image_bgr, bank.px_per_mm, location, mat)
        cells, counted = self.features(inp)
        dist = self.distance_map(cells, counted, key)
        c = self.meta.config
        inside = dist[: -(-inp.size[0] // c.stride), : -(-inp.size[1] // c.stride)]
        return self._result(design, found, dist[counted], inside, inp.box)

    def score_cells(
        self,
        features: NDArray[np.float32],
        counted: NDArray[np.bool_],
        design: str | None,
        box: tuple[int, int, int, int],
    ) -> AnomalyResult | None:
        """A photo scored from the surface branch's cells (source "branch"): `features` (n, D)
        of the `counted` cells of its (h, w) grid, row-major; `box` the crop the grid covers.
        None: no bank covers the design, or no cell counts."""
        found = self.bank_for(design)
        if found is None or not counted.any():
            return None
        if features.shape != (int(counted.sum()), self.meta.feature_dim):
            raise AnomalyError(
                f"{self.folder}: {features.shape} cell features for {int(counted.sum())} cells "
                f"of {self.meta.feature_dim} values"
            )
        key = found[0]
        dist = np.zeros(counted.shape, np.float32)
        dist[counted] = nearest_distances(
            self.project(np.ascontiguousarray(features, np.float32), key),
            self.banks[key],
            self.bank_sq[key],
        )
        return self._result(design, found, dist[counted], pool_max(dist), box)

    def _result(
        self,
        design: str | None,
        found: tuple[str, BankMeta, bool],
        counted: NDArray[np.float32],
        grid: NDArray[np.float32],
        box: tuple[int, int, int, int],
    ) -> AnomalyResult:
        """The result from the counted cells' distances and the map's grid of them: the image
        score, its calibrated level and centred value, the map scaled to the review level."""
        key, bank, fallback = found
        raw = image_score(counted, self.meta.config.top_k)
        at_threshold = score_at_level(self.meta.review_level, bank)
        heat = np.clip(grid / max(at_threshold, 1e-6), 0.0, 1.0).astype(np.float32)
        centred = float(np.log(max(raw, 1e-12)) - bank.log_mu)
        return AnomalyResult(design, key, fallback, raw, level_of(raw, bank), centred, heat, box)

    def summary(self) -> dict[str, Any]:
        """For logs and the registry: which designs have banks, which fall back to a family."""
        m = self.meta
        fallback = sorted(d for d in m.family_of if d not in m.designs)
        return {"designs": sorted(m.designs), "families": sorted(m.families), "fallback": fallback}
