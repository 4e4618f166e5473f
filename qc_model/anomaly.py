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
from statistics import NormalDist
from typing import Annotated, Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from qc_model.anomaly_input import AnomalyInput, piece_cells, prepare_input
from qc_model.errors import DataError
from qc_model.locate import PieceLocation
from qc_model.manifest import checksum_mismatch
from qc_model.mat import MatDetection

ANOMALY_META = "anomaly.json"
ANOMALY_ONNX = "anomaly.onnx"
ANOMALY_BANKS = "anomaly_banks.npz"
FEATURES_INPUT, FEATURES_OUTPUT = "image", "features"
NO_DESIGN = "*"  # the bank of photos that declare no design (e.g. an imported data set)
SHA = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class AnomalyError(DataError):
    """An anomaly model that cannot be used; the message names the file and the problem."""


class AnomalyConfig(BaseModel):
    """How a photo becomes the extractor's input and a patch map becomes a score."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_side: int = Field(default=320, ge=32, le=2048)  # longest input side in pixels
    stride: int = Field(default=8, ge=1, le=64)  # input pixels per feature cell
    pad_to: int = Field(default=16, ge=1, le=64)  # the input is padded to a multiple
    top_k: int = Field(default=3, ge=1, le=1000)  # image score: mean of the k largest patches
    piece_margin: int = Field(default=16, ge=0, le=256)  # cells within this of the piece count
    crop_margin: float = Field(default=0.1, ge=0.0, le=1.0)  # as qc_model.preprocess's


class BankMeta(BaseModel):
    """One bank: whose photos it holds and how their held-out scores are distributed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    photos: int = Field(ge=1)  # good photos whose patches the bank was drawn from
    patches: int = Field(ge=1)  # rows of the bank
    px_per_mm: float | None = Field(default=None, gt=0)  # crop scale for photos on the mat
    calibration_photos: int = Field(ge=1)
    log_mu: float  # mean and spread of log(score) over the held-out good photos
    log_sigma: float = Field(gt=0)


class AnomalyMeta(BaseModel):
    """anomaly.json: the extractor, the banks and their calibration."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["kito-anomaly-model"] = "kito-anomaly-model"
    format_version: Literal[1] = 1
    config: AnomalyConfig = Field(default_factory=AnomalyConfig)
    feature_dim: int = Field(ge=1)
    extractor: dict[str, Any] = Field(default_factory=dict)  # trunk, stages: how it was made
    onnx_sha256: SHA
    banks_sha256: SHA
    designs: dict[str, BankMeta] = Field(default_factory=dict)
    families: dict[str, BankMeta] = Field(default_factory=dict)  # "piece_type/material"
    family_of: dict[str, str] = Field(default_factory=dict)  # design -> its family
    false_hold: float = Field(default=0.02, gt=0.0, lt=1.0)  # target share of good photos held
    training: dict[str, Any] = Field(default_factory=dict)

    @property
    def review_level(self) -> float:
        """The default review threshold on `level`: 1 - the target false-hold rate."""
        return 1.0 - self.false_hold


@dataclass(frozen=True)
class AnomalyResult:
    """What the anomaly model says about one photo."""

    design: str | None
    bank: str  # "design:<id>", "family:<type>/<material>"
    fallback: bool  # scored against the family's bank: the design had too few good photos
    score: float  # mean of the top_k patch distances
    level: float  # 0..1, the estimated share of the bank's good photos scoring lower
    # (h, w) over `box`: each patch's distance / the bank's score at the review level, 0..1
    heatmap: NDArray[np.float32]
    box: tuple[int, int, int, int]  # the photo region the map covers


def bank_key(kind: str, name: str) -> str:
    return f"{kind}:{name}"


def level_of(score: float, bank: BankMeta) -> float:
    """The calibrated level of a raw score: the log-normal tail fitted on held-out goods."""
    z = (np.log(max(score, 1e-12)) - bank.log_mu) / bank.log_sigma
    return float(NormalDist().cdf(float(z)))


def score_at_level(level: float, bank: BankMeta) -> float:
    """The raw score whose level is `level` (the inverse of `level_of`)."""
    z = NormalDist().inv_cdf(min(max(level, 1e-9), 1 - 1e-9))
    return float(np.exp(bank.log_mu + z * bank.log_sigma))


def nearest_distances(
    queries: NDArray[np.float32],
    bank: NDArray[np.float32],
    bank_sq: NDArray[np.float32] | None = None,
    max_elements: int = 1 << 22,
) -> NDArray[np.float32]:
    """(N, D) x (M, D) -> (N,) Euclidean distance of each query to its nearest bank row,
    in chunks of queries so at most `max_elements` distances are held at once (16 MB)."""
    if queries.ndim != 2 or bank.ndim != 2 or queries.shape[1] != bank.shape[1]:
        raise ValueError(f"queries {queries.shape} and bank {bank.shape} do not match")
    if len(bank) == 0:
        raise ValueError("the bank is empty")
    sq = (bank * bank).sum(1) if bank_sq is None else bank_sq
    rows = max(1, max_elements // len(bank))
    out = np.empty(len(queries), np.float32)
    for s in range(0, len(queries), rows):
        q = queries[s : s + rows]
        d2 = sq[None, :] - 2.0 * (q @ bank.T)  # (r, M): |b|^2 - 2 q.b; |q|^2 added after min
        out[s : s + rows] = d2.min(axis=1) + (q * q).sum(1)
    return np.sqrt(np.maximum(out, 0.0)).astype(np.float32)


def image_score(distances: NDArray[np.float32], top_k: int) -> float:
    """Mean of the `top_k` largest patch distances (all of them when fewer)."""
    if distances.size == 0:
        raise ValueError("no patches to score")
    k = min(top_k, distances.size)
    return float(np.partition(distances.ravel(), -k)[-k:].mean())


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


def read_anomaly_meta(folder: Path | str) -> AnomalyMeta:
    path = Path(folder) / ANOMALY_META
    if not path.is_file():
        raise AnomalyError(f"{folder}: no {ANOMALY_META}; no anomaly model here")
    try:
        return AnomalyMeta.model_validate_json(path.read_text(encoding="utf-8"))
    except (ValidationError, UnicodeDecodeError) as exc:
        first = exc.errors()[0] if isinstance(exc, ValidationError) else None
        why = f"{'.'.join(map(str, first['loc']))}: {first['msg']}" if first else str(exc)
        raise AnomalyError(f"{path}: {why}") from None


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
        self.session = open_session(_checked(self.folder / ANOMALY_ONNX, m.onnx_sha256), threads)
        ins, outs = self.session.get_inputs(), self.session.get_outputs()
        if [i.name for i in ins] != [FEATURES_INPUT] or FEATURES_OUTPUT not in {
            o.name for o in outs
        }:
            raise AnomalyError(
                f"{self.folder / ANOMALY_ONNX}: expected input '{FEATURES_INPUT}' and output "
                f"'{FEATURES_OUTPUT}'"
            )
        with np.load(_checked(self.folder / ANOMALY_BANKS, m.banks_sha256)) as npz:
            arrays = {k: np.asarray(npz[k], np.float32) for k in npz.files}
        wanted = [bank_key("design", d) for d in m.designs]
        wanted += [bank_key("family", f) for f in m.families]
        missing = [k for k in wanted if k not in arrays]
        if missing:
            raise AnomalyError(f"{self.folder / ANOMALY_BANKS}: no bank {missing[0]!r}")
        bad = [k for k in wanted if arrays[k].ndim != 2 or arrays[k].shape[1] != m.feature_dim]
        if bad:
            raise AnomalyError(f"{self.folder / ANOMALY_BANKS}: bank {bad[0]!r} is not (N, D)")
        self.banks = {k: arrays[k] for k in wanted}
        self.bank_sq = {k: (b * b).sum(1) for k, b in self.banks.items()}

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
        out[counted] = nearest_distances(cells[counted], self.banks[key], self.bank_sq[key])
        return out

    def score(
        self,
        image_bgr: NDArray[np.uint8],
        design: str | None,
        location: PieceLocation | None = None,
        mat: MatDetection | None = None,
    ) -> AnomalyResult | None:
        """The photo against its design's bank (or its family's); None: no bank covers it."""
        found = self.bank_for(design)
        if found is None:
            return None
        key, bank, fallback = found
        inp = self.prepare(image_bgr, bank.px_per_mm, location, mat)
        cells, counted = self.features(inp)
        dist = self.distance_map(cells, counted, key)
        raw = image_score(dist[counted], self.meta.config.top_k)
        at_threshold = score_at_level(self.meta.review_level, bank)
        c = self.meta.config
        inside = dist[: -(-inp.size[0] // c.stride), : -(-inp.size[1] // c.stride)]
        heat = np.clip(inside / max(at_threshold, 1e-6), 0.0, 1.0).astype(np.float32)
        return AnomalyResult(design, key, fallback, raw, level_of(raw, bank), heat, inp.box)

    def summary(self) -> dict[str, Any]:
        """For logs and the registry: which designs have banks, which fall back to a family."""
        m = self.meta
        fallback = sorted(d for d in m.family_of if d not in m.designs)
        return {"designs": sorted(m.designs), "families": sorted(m.families), "fallback": fallback}
