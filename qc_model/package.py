"""The model package: model.onnx + package.json (also embedded in the ONNX), loaded with checks.

A package is the unit that travels from training to serving. Everything serving needs to use
the model correctly (classes, preprocessing, calibration, thresholds) is inside it, so no
second copy of those numbers can drift. No torch and no `onnx` import here: onnxruntime reads
the embedded metadata itself.

A package may also hold a surface branch (surface.onnx, `PackageMeta.surface`): a fully
convolutional network that looks at the piece crop at a fixed scale in pixels per mm and scores
some classes per 8 x 8 pixel cell. For those classes the package's probability combines both
networks' logits (`SurfaceMeta.fusion`), and the heatmap is the surface branch's finer one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)

from qc_model.anomaly import AnomalyError, AnomalyModel
from qc_model.anomaly_ref import AnomalyRef, open_anomaly
from qc_model.cpu import VNNI_FLAGS, cpu_simd, has_vnni
from qc_model.identity import EMBEDDING_NAME, DesignReferences, IdentityError, IdentityRef
from qc_model.manifest import checksum_mismatch
from qc_model.package_graphs import (  # re-exported: callers import these from here
    HEATMAPS_NAME as HEATMAPS_NAME,
)
from qc_model.package_graphs import INPUT_NAME as INPUT_NAME
from qc_model.package_graphs import (
    META_FILE,
    MODEL_FILE,
    PackageError,
    check_embedded,
    check_io,
    has_cell_features,
    load_surface,
    open_session,
)
from qc_model.package_graphs import ONNX_META_KEY as ONNX_META_KEY
from qc_model.package_graphs import PROBS_NAME as PROBS_NAME
from qc_model.package_graphs import SURFACE_CELLS as SURFACE_CELLS
from qc_model.package_graphs import SURFACE_FILE as SURFACE_FILE
from qc_model.package_graphs import SURFACE_INPUT as SURFACE_INPUT
from qc_model.package_graphs import SURFACE_LOGITS as SURFACE_LOGITS
from qc_model.package_graphs import surface_runner as surface_runner
from qc_model.preprocess import PreprocessConfig
from qc_model.surface import SurfaceConfig
from qc_model.taxonomy import DEFECT_LABELS, TAXONOMY_VERSION

PACKAGE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
Prob = Annotated[float, Field(ge=0.0, le=1.0)]


class ClassThreshold(BaseModel):
    """One class's operating point: below review_low pass, from review_high on fail, else review.

    `threshold` is the point chosen for the target recall; evaluation reports the any-defect
    decision there. review_low <= threshold <= review_high.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    threshold: Prob
    review_low: Prob
    review_high: Prob

    @model_validator(mode="after")
    def _ordered(self) -> ClassThreshold:
        if not self.review_low <= self.threshold <= self.review_high:
            raise ValueError(
                f"need review_low <= threshold <= review_high, got "
                f"{self.review_low} / {self.threshold} / {self.review_high}"
            )
        return self

    @property
    def band(self) -> tuple[float, float]:
        """(t_low, t_high) as qc_model.verdict takes it: review from t_low, fail from t_high."""
        return (self.review_low, self.review_high)


def bands(thresholds: Mapping[str, ClassThreshold]) -> dict[str, tuple[float, float]]:
    """Per-class review bands for qc_model.verdict.decide."""
    return {name: t.band for name, t in thresholds.items()}


class Fusion(BaseModel):
    """p = sigmoid(w_model * logit(p_model) + w_surface * surface_logit + bias), fitted on val."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    w_model: float
    w_surface: float
    bias: float
    # Subtracted from the branch logit on a photo of that design before fusing: how much
    # higher the branch scores the design's photos without this defect than all designs'
    # (fitted on val, shrunk toward 0 for designs with few photos). A design not listed, or a
    # photo of no known design, gets 0: the fusion as fitted over all designs.
    design_offsets: dict[str, float] = Field(default_factory=dict)

    @model_serializer(mode="wrap")
    def _without_empty_offsets(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """No offsets: written exactly as before they existed, so a package fitted earlier
        (its package.json and the copy embedded in model.onnx) still matches its metadata."""
        data: dict[str, Any] = handler(self)
        if not self.design_offsets:
            data.pop("design_offsets", None)
        return data


class SurfaceMeta(BaseModel):
    """The surface branch of a package: which classes it scores and how its input is made."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    classes: Annotated[list[str], Field(min_length=1)]  # its outputs, in order
    config: SurfaceConfig
    # The classes whose package probability uses the branch, and how (the others ignore it).
    fusion: dict[str, Fusion]
    onnx_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    training: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> SurfaceMeta:
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"surface: duplicate classes: {self.classes}")
        outside = sorted(set(self.fusion) - set(self.classes))
        if outside:
            raise ValueError(f"surface: fusion for classes the branch does not score: {outside}")
        return self


class PackageMeta(BaseModel):
    """package.json. Everything but onnx_sha256 is also embedded in model.onnx."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["kito-model-package"] = "kito-model-package"
    format_version: Literal[1] = 1
    name: Annotated[str, Field(pattern=PACKAGE_NAME)]
    version: Annotated[str, Field(min_length=1)]
    taxonomy_version: str
    task: Literal["multilabel", "single_label"]
    classes: Annotated[list[str], Field(min_length=1)]
    preprocess: PreprocessConfig
    heatmap_size: tuple[int, int]
    temperature: Annotated[float, Field(gt=0)]
    thresholds: dict[str, ClassThreshold]
    precision: Literal["fp32", "int8"] = "fp32"
    # INT8 with full-range 8-bit weights: only a CPU with VNNI runs it without saturating
    # (qc_model.cpu); load_package refuses it elsewhere.
    requires_vnni: bool = False
    dataset_versions: dict[str, str] = Field(default_factory=dict)
    training: dict[str, Any] = Field(default_factory=dict)
    git_commit: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    onnx_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    surface: SurfaceMeta | None = None
    anomaly: AnomalyRef | None = None
    identity: IdentityRef | None = None  # design references (qc_model.identity)

    @model_serializer(mode="wrap")
    def _without_absent_parts(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """No anomaly model or design references: written exactly as before they existed (old
        packages' embedded metadata keeps matching, and a package's version text does not
        change)."""
        data: dict[str, Any] = handler(self)
        for part in ("anomaly", "identity"):
            if getattr(self, part) is None:
                data.pop(part, None)
        if not self.requires_vnni:
            data.pop("requires_vnni", None)
        return data

    @model_validator(mode="after")
    def _consistent(self) -> PackageMeta:
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"duplicate classes: {self.classes}")
        if self.task == "multilabel":
            outside = [c for c in self.classes if c not in DEFECT_LABELS]
            if outside:
                raise ValueError(f"classes not in the defect taxonomy: {outside}")
        if set(self.thresholds) != set(self.classes):
            missing = sorted(set(self.classes) - set(self.thresholds))
            extra = sorted(set(self.thresholds) - set(self.classes))
            raise ValueError(f"thresholds must cover the classes: missing {missing}, extra {extra}")
        if self.surface is not None:
            if self.task != "multilabel":
                raise ValueError("a surface branch needs a multilabel package")
            unknown = sorted(set(self.surface.fusion) - set(self.classes))
            if unknown:
                raise ValueError(f"surface: fusion for classes the package lacks: {unknown}")
        return self

    def embedded_json(self) -> str:
        """What goes into model.onnx's metadata_props (the checksum cannot contain itself)."""
        return self.model_dump_json(exclude={"onnx_sha256"})


@dataclass(frozen=True)
class ModelPackage:
    path: Path
    meta: PackageMeta
    session: Any  # onnxruntime.InferenceSession, created once with the checks below
    surface_session: Any = None  # the same for surface.onnx, when the package has a branch
    anomaly: AnomalyModel | None = None  # the per-design anomaly model, when it has one
    identity: DesignReferences | None = None  # the design references, when it has them

    @property
    def classes(self) -> list[str]:
        return list(self.meta.classes)


def write_package_json(folder: Path, meta: PackageMeta) -> Path:
    path = Path(folder) / META_FILE
    path.write_text(meta.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return path


def read_meta(folder: Path | str) -> PackageMeta:
    path = Path(folder) / META_FILE
    if not path.is_file():
        raise PackageError(f"{folder}: no {META_FILE}; not a model package")
    try:
        return PackageMeta.model_validate_json(path.read_text(encoding="utf-8"))
    except (ValidationError, UnicodeDecodeError) as exc:
        reason = _first_error(exc) if isinstance(exc, ValidationError) else str(exc)
        raise PackageError(f"{path}: {reason}") from None


def load_package(path: Path | str, threads: int = 2) -> ModelPackage:
    """Open a package and verify everything; `PackageError` says what is wrong."""
    folder = Path(path)
    if not folder.is_dir():
        raise PackageError(f"{folder}: model package folder not found")
    meta = read_meta(folder)
    model = folder / MODEL_FILE
    if not model.is_file():
        raise PackageError(f"{folder}: {MODEL_FILE} is missing")
    if why := checksum_mismatch(model, meta.onnx_sha256, "package.json"):
        raise PackageError(why)
    if meta.taxonomy_version != TAXONOMY_VERSION:
        raise PackageError(
            f"{folder}: built for taxonomy version {meta.taxonomy_version}, this code has "
            f"{TAXONOMY_VERSION}; retrain or export again"
        )
    if meta.requires_vnni and not has_vnni():
        raise PackageError(
            f"{folder}: INT8 with 8-bit weights needs a CPU with VNNI ({', '.join(VNNI_FLAGS)});"
            f" this one has {cpu_simd()}, where its products saturate: serve the FP32 package,"
            " or an INT8 copy made with --weight-bits 7"
        )
    session = open_session(model, threads)
    check_embedded(model, session, meta)
    check_io(model, session, meta)
    surface = load_surface(folder, meta.surface, threads) if meta.surface else None
    anomaly = _load_anomaly(folder, meta.anomaly, threads) if meta.anomaly else None
    if (
        anomaly is not None
        and anomaly.from_branch
        and (surface is None or not has_cell_features(surface))
    ):
        raise PackageError(
            f"{folder}: its anomaly model reads the surface branch's cell features, and "
            f"{SURFACE_FILE} has no such output"
        )
    identity = None
    if meta.identity is not None:
        if EMBEDDING_NAME not in {o.name for o in session.get_outputs()}:
            raise PackageError(
                f"{model}: package.json names design references, no '{EMBEDDING_NAME}' output"
            )
        try:
            identity = DesignReferences(folder, meta.identity)
        except IdentityError as exc:
            raise PackageError(str(exc)) from None
    return ModelPackage(folder, meta, session, surface, anomaly, identity)


def _load_anomaly(folder: Path, ref: AnomalyRef, threads: int) -> AnomalyModel:
    try:
        return open_anomaly(folder, ref, threads)
    except AnomalyError as exc:
        raise PackageError(str(exc)) from None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    return f"field '{loc}': {err['msg']}" if loc else err["msg"]
