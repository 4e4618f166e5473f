"""anomaly.json: the anomaly model's settings, its banks' calibration and its review level.

Pydantic only, read by serving and written by training (training/anomaly/package.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from qc_model.errors import DataError

ANOMALY_META = "anomaly.json"
ANOMALY_ONNX = "anomaly.onnx"
ANOMALY_BANKS = "anomaly_banks.npz"
FEATURES_INPUT, FEATURES_OUTPUT = "image", "features"
# Where the patch features come from: the ImageNet trunk exported as anomaly.onnx, or the
# package's surface branch (surface.onnx's `cell_features`, read off the run the service makes
# for the defect scores anyway).
SOURCE_EXTRACTOR: Literal["extractor"] = "extractor"
SOURCE_BRANCH: Literal["branch"] = "branch"
NO_DESIGN = "*"  # the bank of photos that declare no design (e.g. an imported data set)
PROJECTION = "proj"  # npz key prefix of a bank's projection: "proj:design:<id>"
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


class ReviewChoice(BaseModel):
    """The review level chosen on labelled val photos for a target recall (kito anomaly
    thresholds), and what it gave there."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    level: float = Field(gt=0.0, lt=1.0)
    target_recall: float = Field(gt=0.0, le=1.0)
    manifest_version: str
    good: int = Field(ge=1)  # val photos scored (judged, covered by a bank)
    defective: int = Field(ge=1)
    recall: float  # anomaly-only, at `level`, on those photos
    false_hold: float


class FusedReview(BaseModel):
    """One review rule for the classifier and the anomaly model together, chosen on labelled
    val photos for a target recall (kito anomaly thresholds): a photo goes to review when
    margin + weight * log(score / centre) >= threshold, where margin is the classifier's
    highest logit(p) - logit(review_low) over the defect classes and centre the design's
    good photos' median score (exp(log_mu)). A normal-looking photo can so clear a weak class
    score, and an unusual one be held below the class's band; a class at its fail threshold
    still fails."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weight: float = Field(gt=0.0, le=100.0)
    threshold: float
    target_recall: float = Field(gt=0.0, le=1.0)
    manifest_version: str
    good: int = Field(ge=1)
    defective: int = Field(ge=1)
    recall: float  # on those val photos, fused
    false_hold: float
    classifier_recall: float  # the classifier alone at its own review bands, same photos
    classifier_false_hold: float
    # The classifier alone chosen the same way (its margin's threshold for the target recall on
    # the same photos): the fair comparison for what the anomaly term adds.
    classifier_threshold: float | None = None
    classifier_threshold_false_hold: float | None = None
    # Held also at or above this anomaly level, whatever the margin (a defect no class knows);
    # the lowest level adding at most `guard_budget` of good photos held on those val photos.
    guard: float | None = Field(default=None, gt=0.0, le=1.0)
    guard_budget: float | None = None
    guard_false_hold: float | None = None  # on val, with the guard


class AnomalyMeta(BaseModel):
    """anomaly.json: the extractor, the banks and their calibration."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["kito-anomaly-model"] = "kito-anomaly-model"
    format_version: Literal[1] = 1
    config: AnomalyConfig = Field(default_factory=AnomalyConfig)
    feature_dim: int = Field(ge=1)
    extractor: dict[str, Any] = Field(default_factory=dict)  # trunk, stages: how it was made
    source: Literal["extractor", "branch"] = SOURCE_EXTRACTOR
    onnx_sha256: SHA | None = None  # anomaly.onnx (source "extractor")
    # source "branch": surface.onnx's checksum when the banks were filled; a package whose
    # branch changed since has banks of another network's features and does not load.
    branch_sha256: SHA | None = None
    banks_sha256: SHA
    designs: dict[str, BankMeta] = Field(default_factory=dict)
    families: dict[str, BankMeta] = Field(default_factory=dict)  # "piece_type/material"
    family_of: dict[str, str] = Field(default_factory=dict)  # design -> its family
    false_hold: float = Field(default=0.02, gt=0.0, lt=1.0)  # target share of good photos held
    review: ReviewChoice | None = None  # a level chosen for a target recall instead
    fused: FusedReview | None = None  # a fused rule chosen for a target recall (see above)
    training: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _graph_named(self) -> AnomalyMeta:
        if self.source == SOURCE_EXTRACTOR and self.onnx_sha256 is None:
            raise ValueError("an extractor anomaly model needs onnx_sha256 (of anomaly.onnx)")
        if self.source == SOURCE_BRANCH and self.branch_sha256 is None:
            raise ValueError("a branch anomaly model needs branch_sha256 (of surface.onnx)")
        return self

    @property
    def review_level(self) -> float:
        """The default review threshold on `level`: the one chosen for a target recall on
        val photos, else 1 - the target false-hold rate."""
        return self.review.level if self.review is not None else 1.0 - self.false_hold


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
