"""Photo gate: is this photo good enough to judge the piece? Blur, exposure, resolution, framing,
piece and mat found; each failure carries a retake instruction for the artisan."""

from __future__ import annotations

import math
from typing import Any, Literal

import cv2
import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, computed_field

from qc_model.catalog import Design
from qc_model.locate import PieceLocation, locate_piece
from qc_model.mat import MatDetection, find_mat, work_copy
from qc_model.messages import retake_message

# Blur is judged on the piece resampled to at most this scale, so a 12-megapixel photo (whose
# lens blurs over a few pixels) and a small one are held to the same standard in millimetres.
SHARPNESS_PX_PER_MM = 4.0
# A phone photo of the card spans about this much across its longer side (the 297 mm card and
# some table); a photo is decoded with this margin over the px/mm the gate demands.
FRAME_SPAN_MM = 370.0
DECODE_MARGIN = 1.5
# Exposure and focus are judged on the piece's box grown by this margin (paper around it).
REGION_MARGIN_MM = 5.0


class GateConfig(BaseModel):
    """Limits of the photo gate; defaults tuned on synthetic photos (docs/CHECKS.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_long_side_px: int = Field(default=640, ge=64)
    min_markers: int = Field(default=2, ge=1, le=8)
    min_px_per_mm: float = Field(default=1.8, gt=0)
    # The design's tightest size tolerance must span this many pixels, or sizes cannot be judged
    # (median size error on synthetic photos ~1.2 %: 0.6 px for a 20 mm ring at 2.5 px/mm).
    min_tolerance_px: float = Field(default=1.6, gt=0)
    # The piece's longer side, as a fraction of the photo's longer side.
    min_piece_fill: float = Field(default=0.025, gt=0, lt=1)
    # Edge sharpness: steepest gradients over the region's contrast, per pixel (0.4/sigma for
    # an edge blurred by a Gaussian of sigma pixels at SHARPNESS_PX_PER_MM).
    min_sharpness: float = Field(default=0.135, gt=0)
    # Exposure of the piece region (piece and the paper around it).
    min_median_luminance: float = Field(default=105.0, ge=0, le=255)
    # Fully saturated (255) pixels: paper printed near white may read 250-254 in a good photo.
    max_clipped_fraction: float = Field(default=0.02, gt=0, le=1)
    max_crushed_fraction: float = Field(default=0.25, gt=0, le=1)


class GateCheck(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    measured: float
    limit: float
    # "min": measured must be >= limit; "max": measured must be <= limit.
    kind: Literal["min", "max"]
    passed: bool
    code: str  # the retake code if it fails


class GateResult(BaseModel):
    """Every gate check that could be made on the photo, and the mat and piece it found."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    checks: list[GateCheck]
    mat: MatDetection | None = Field(default=None, exclude=True, repr=False)
    location: PieceLocation | None = Field(default=None, exclude=True, repr=False)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def retake_codes(self) -> list[str]:
        """Failure codes, most fundamental first, each once."""
        return list(dict.fromkeys(c.code for c in self.checks if not c.passed))

    def messages(self, lang: str = "en") -> list[str]:
        return [retake_message(code, lang) for code in self.retake_codes]


def _check(
    name: str, measured: float, limit: float, kind: Literal["min", "max"], code: str
) -> GateCheck:
    ok = measured >= limit if kind == "min" else measured <= limit
    return GateCheck(
        name=name,
        measured=round(float(measured), 4),
        limit=limit,
        kind=kind,
        passed=bool(ok),
        code=code,
    )


def check_photo(
    image_bgr: NDArray[np.uint8],
    design: Design | None = None,
    cfg: GateConfig | None = None,
    *,
    mat: MatDetection | None = None,
    location: PieceLocation | None = None,
) -> GateResult:
    """Run the photo gate. `mat` / `location` may be passed in when already computed."""
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
        raise ValueError(
            f"expected a uint8 BGR image (H, W, 3), got {image_bgr.dtype} {image_bgr.shape}"
        )
    cfg = cfg or GateConfig()
    gray = np.asarray(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY), np.uint8)
    h, w = gray.shape
    checks = [_check("long_side_px", max(h, w), cfg.min_long_side_px, "min", "low_resolution")]
    # One shrunk copy serves both the marker search and the piece location.
    work = work_copy(image_bgr) if mat is None or location is None else None
    if mat is None:
        assert work is not None
        mat = find_mat(gray, work=np.asarray(cv2.cvtColor(work, cv2.COLOR_BGR2GRAY), np.uint8))
    markers = len(mat.marker_ids) if mat else 0
    checks.append(_check("mat_markers", markers, cfg.min_markers, "min", "no_mat"))
    if mat is not None:
        checks.append(
            _check("px_per_mm", mat.px_per_mm, _min_px_per_mm(design, cfg), "min", "too_far")
        )
    if location is None:
        location = locate_piece(image_bgr, mat, find_mat=False, work=work)
    checks.append(_check("piece_found", float(location is not None), 1.0, "min", "no_piece"))
    ppm = mat.px_per_mm if mat else None
    region = piece_region(gray, location, ppm) if location is not None else gray
    checks += exposure_checks(region, cfg)
    if location is not None:
        checks.append(
            _check("piece_inside_frame", float(location.touches_edge), 0.0, "max", "piece_cut_off")
        )
        x0, y0, x1, y1 = location.bbox
        fill = max(x1 - x0, y1 - y0) / max(h, w)
        checks.append(_check("piece_fill", fill, cfg.min_piece_fill, "min", "too_far"))
        if design is not None and design.pair:
            checks.append(_check("pieces_seen", location.count, 2, "min", "pair_incomplete"))
        checks.append(
            _check("sharpness", sharpness(region, ppm), cfg.min_sharpness, "min", "blurry")
        )
    order = {code: i for i, code in enumerate(_PRIORITY)}
    checks.sort(key=lambda c: order.get(c.code, len(order)))
    return GateResult(checks=checks, mat=mat, location=location)


# What to fix first: no point asking for focus while the mat is not even in the photo.
_PRIORITY = (
    "no_mat",
    "no_piece",
    "piece_cut_off",
    "pair_incomplete",
    "too_dark",
    "too_bright",
    "too_far",
    "low_resolution",
    "blurry",
)


def decode_long_side(
    design: Design | None,
    cfg: GateConfig | None = None,
    floor: int = 0,
    model_px_per_mm: float | None = None,
) -> int:
    """The long side a photo of this design should be decoded to (at least `floor`): enough
    px/mm for its tightest tolerance with DECODE_MARGIN to spare, and no more, since every
    stage's cost grows with the pixel count (qc_model.decode picks the DCT scale from this).

    `model_px_per_mm` is the least scale the model itself reads the photo at (a package's
    surface branch, `Inferencer.min_px_per_mm`); a photo decoded coarser would be enlarged
    again for it, and enlarging brings back no hairline that the DCT reduction dropped."""
    need = _min_px_per_mm(design, cfg or GateConfig())
    side = math.ceil(FRAME_SPAN_MM * DECODE_MARGIN * need)
    if model_px_per_mm is not None:
        side = max(side, math.ceil(FRAME_SPAN_MM * model_px_per_mm))
    return max(floor, side)


def _min_px_per_mm(design: Design | None, cfg: GateConfig) -> float:
    if design is None:
        return cfg.min_px_per_mm
    tightest = min(d.tolerance_mm for d in design.dimensions)
    return round(max(cfg.min_px_per_mm, cfg.min_tolerance_px / tightest), 3)


def piece_region(
    gray: NDArray[np.uint8], location: PieceLocation, px_per_mm: float | None
) -> NDArray[np.uint8]:
    """The piece and the paper around it: exposure and focus matter there, not on the table."""
    h, w = gray.shape
    ppm = px_per_mm or max(h, w) / 300.0  # without a mat, assume the frame spans ~30 cm
    pad = round(REGION_MARGIN_MM * ppm)
    x0, y0, x1, y1 = location.bbox
    return gray[max(0, y0 - pad) : min(h, y1 + pad), max(0, x0 - pad) : min(w, x1 + pad)]


def exposure_checks(region: NDArray[np.uint8], cfg: GateConfig) -> list[GateCheck]:
    """Median luminance (the paper dominates around a piece), blown and crushed fractions."""
    small = region[:: max(1, region.shape[0] // 512), :: max(1, region.shape[1] // 512)]
    median = float(np.median(small))
    clipped = float(np.mean(small >= 255))
    crushed = float(np.mean(small <= 10))
    return [
        _check("median_luminance", median, cfg.min_median_luminance, "min", "too_dark"),
        _check("clipped_fraction", clipped, cfg.max_clipped_fraction, "max", "too_bright"),
        _check("crushed_fraction", crushed, cfg.max_crushed_fraction, "max", "too_dark"),
    ]


def sharpness(region: NDArray[np.uint8], px_per_mm: float | None) -> float:
    """Contrast-normalised edge steepness in the piece region, at a fixed scale in mm, in the
    direction where edges are softest.

    The variance of the Laplacian grows with contrast and with texture as much as with focus, so
    a dull horn pendant would read as blurry and a busy bead strand as sharp; the steepest
    gradients divided by the region's contrast depend on the edge's width only. Motion blur
    softens edges across one direction only, so each of four directions is scored and the
    weakest counts (the strongest let 75 % of motion-blurred photos through, docs/CHECKS.md).
    """
    ppm = px_per_mm or max(region.shape) / 300.0
    f: NDArray[Any] = region.astype(np.float32)
    scale = min(1.0, SHARPNESS_PX_PER_MM / ppm)
    if scale < 1.0:
        f = cv2.resize(f, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    f = cv2.GaussianBlur(f, (0, 0), 0.6)  # tames sensor noise
    lo, hi = -top_percentile(-f, 99.0), top_percentile(f, 99.0)
    if hi - lo < 10:
        return 0.0  # no contrast at all: nothing to focus on
    gx = cv2.Sobel(f, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(f, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    diagonal = np.sqrt(0.5)
    directions = (gx, gy, (gx + gy) * diagonal, (gx - gy) * diagonal)
    return float(min(top_percentile(np.abs(g), 99.5) for g in directions) / (hi - lo))


def top_percentile(a: NDArray[Any], q: float) -> float:
    """`np.percentile(a, q)` (linear interpolation) for q near 100, without partitioning the
    whole array: the top ranks are sorted among the values above a threshold taken from a
    sparse sample (five full partitions were a quarter of the gate's time on 12 MP photos)."""
    flat = a.reshape(-1)
    n = flat.size
    pos = (n - 1) * q / 100.0
    lo = int(np.floor(pos))
    need = n - lo  # ranks lo .. n-1, ascending
    if n >= 4096:
        sample = flat[::16]
        k = max(0, sample.size - 2 * (need // 16) - 16)  # twice the share needed, and some
        above = flat[flat > np.partition(sample, k)[k]]
        if above.size >= need:  # every one of the top `need` values is above the threshold
            top = np.sort(above)[above.size - need :]
            s_lo = float(top[0])
            s_hi = float(top[1]) if need > 1 else s_lo
            return s_lo + (s_hi - s_lo) * (pos - lo)
    return float(np.percentile(flat, q))
