"""Which design a photo shows: a piece-crop descriptor and the package's per-design references,
to catch a piece declared as one design and made as another (`design_mismatch`, to review).

The descriptor is what the defect network already computes: its `embedding` output (the stage-5
feature map of the piece crop, averaged over the crop: 192 numbers for Lite0), scaled to unit
length, followed by SIZE_WEIGHT x log of the piece's two sides in mm (its minimum-area rectangle
on the calibration mat). The crop is resized to the network's input, so the embedding alone
cannot tell a 30 mm hoop from a 50 mm one; the mat can.

A design's distance to a photo is the mean distance to its K nearest reference descriptors. The
mismatch score is the declared design's distance over the nearest OTHER design's: above 1, the
photo looks more like another design than like its own. The package's `threshold` on that ratio
is chosen when the references are fitted (training/identity_fit.py), as the ratio's quantile
over the reference photos themselves, each scored with its own piece's photos left out, at the
target false-flag rate.

Pure numpy (serving imports this; no torch).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import cv2
import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from qc_model.errors import DataError
from qc_model.locate import PieceLocation
from qc_model.manifest import checksum_mismatch
from qc_model.mat import MatDetection

EMBEDDING_NAME = "embedding"  # model.onnx's optional third output: (batch, D)
REFS_FILE = "design_refs.npz"  # one float16 (n, D + 2) array per design, key "design:<id>"
SIZE_WEIGHT = 0.2  # chosen on rendered seed 29004 (docs/CHECKS.md, "Declared design")
K_NEAREST = 3
REASON = "design_mismatch"


class IdentityError(DataError):
    """Design references that cannot be used; the message names the file and the problem."""


class IdentityRef(BaseModel):
    """package.json's `identity` entry: the references' file, checksum and operating point."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    refs_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    designs: list[str] = Field(min_length=2)  # a mismatch needs another design to point at
    dims: int = Field(ge=1)  # the embedding's length
    k: int = Field(default=K_NEAREST, ge=1, le=50)
    size_weight: float = Field(default=SIZE_WEIGHT, ge=0.0)
    threshold: float = Field(gt=0.0)  # ratio above which a photo is flagged
    false_flag: float = Field(gt=0.0, lt=1.0)  # the target the threshold was chosen for
    min_refs: int = Field(default=5, ge=1)  # a design with fewer references is not checked
    references: dict[str, int] = Field(default_factory=dict)  # photos per design
    fitted_on: dict[str, object] = Field(default_factory=dict)  # data version, flags on refs


@dataclass(frozen=True)
class DesignCheck:
    """One photo against the references: its ratio, the nearest other design, and the call."""

    declared: str
    ratio: float
    nearest: str  # the nearest design other than the declared one
    flagged: bool

    def as_json(self) -> dict[str, object]:
        return {
            "declared": self.declared,
            "ratio": round(self.ratio, 4),
            "likely_design": self.nearest,
            "flagged": self.flagged,
        }


def piece_size_mm(location: PieceLocation | None, mat: MatDetection | None) -> tuple[float, float]:
    """(long, short) side in mm of the piece mask's minimum-area rectangle on the mat; (0, 0)
    without a piece or a mat with two markers (one marker fixes the scale, not the view)."""
    if location is None or mat is None or len(mat.marker_ids) < 2:
        return (0.0, 0.0)
    contours, _ = cv2.findContours(location.mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return (0.0, 0.0)
    pts = mat.to_mat(np.concatenate([c.reshape(-1, 2) for c in contours]).astype(np.float64))
    if len(pts) < 3:
        return (0.0, 0.0)
    (_, _), (a, b), _ = cv2.minAreaRect(pts.astype(np.float32))
    return (float(max(a, b)), float(min(a, b)))


def descriptor(
    embedding: NDArray[np.floating], size_mm: tuple[float, float], size_weight: float
) -> NDArray[np.float32]:
    """(D + 2,): the unit-length embedding, then size_weight x log(side in mm) (1 mm floor)."""
    e = np.asarray(embedding, np.float64).ravel()
    e = e / max(float(np.linalg.norm(e)), 1e-12)
    size = size_weight * np.log(np.maximum(np.asarray(size_mm, np.float64), 1.0))
    return np.concatenate([e, size]).astype(np.float32)


def design_distances(
    refs: dict[str, NDArray[np.float32]], query: NDArray[np.float32], k: int
) -> dict[str, float]:
    """Each design's mean Euclidean distance from `query` to its k nearest references."""
    out = {}
    for design, rows in refs.items():
        d = np.sqrt(np.maximum(((rows - query) ** 2).sum(axis=1), 0.0))
        kk = min(k, len(d))
        out[design] = float(np.partition(d, kk - 1)[:kk].mean())
    return out


def mismatch_ratio(distances: dict[str, float], declared: str) -> tuple[float, str]:
    """(declared design's distance / nearest other design's, that other design)."""
    others = {d: v for d, v in distances.items() if d != declared}
    nearest = min(others, key=others.__getitem__)
    return distances[declared] / max(others[nearest], 1e-12), nearest


class DesignReferences:
    """The package's references, loaded once (checked against package.json's checksum)."""

    def __init__(self, folder: Path, ref: IdentityRef) -> None:
        path = folder / REFS_FILE
        if not path.is_file():
            raise IdentityError(
                f"{folder}: package.json names design references, {REFS_FILE} is missing"
            )
        if why := checksum_mismatch(path, ref.refs_sha256, "package.json"):
            raise IdentityError(why)
        self.ref = ref
        self.refs = load_refs(path.read_bytes(), ref.dims)
        missing = sorted(set(ref.designs) - set(self.refs))
        if missing:
            raise IdentityError(f"{path}: no references for {', '.join(missing)}")

    def covers(self, design: str) -> bool:
        rows = self.refs.get(design)
        return rows is not None and len(rows) >= self.ref.min_refs and len(self.refs) >= 2

    def check(
        self, embedding: NDArray[np.floating], size_mm: tuple[float, float], declared: str
    ) -> DesignCheck | None:
        """The photo against the references; None when the declared design is not covered or
        the photo has no size (no mat: the gate refuses it anyway)."""
        if not self.covers(declared) or min(size_mm) <= 0:
            return None
        q = descriptor(embedding, size_mm, self.ref.size_weight)
        ratio, nearest = mismatch_ratio(design_distances(self.refs, q, self.ref.k), declared)
        return DesignCheck(declared, ratio, nearest, ratio > self.ref.threshold)


def load_refs(data: bytes, dims: int) -> dict[str, NDArray[np.float32]]:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            out = {
                key.split(":", 1)[1]: np.asarray(z[key], np.float32)
                for key in z.files
                if key.startswith("design:")
            }
    except (OSError, ValueError) as exc:
        raise IdentityError(f"{REFS_FILE}: not a references file ({exc})") from None
    for design, rows in out.items():
        if rows.ndim != 2 or rows.shape[1] != dims + 2 or not np.isfinite(rows).all():
            raise IdentityError(
                f"{REFS_FILE}: design {design}: expected finite (n, {dims + 2}) rows, got "
                f"{rows.shape}"
            )
    return out


def save_refs(path: Path, refs: dict[str, NDArray[np.floating]]) -> None:
    arrays = {f"design:{d}": np.asarray(rows, np.float16) for d, rows in sorted(refs.items())}
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)  # type: ignore[arg-type]
