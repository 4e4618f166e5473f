"""Find the jewelry piece in a photo: whatever differs from the paper of the calibration card."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from qc_model.locate_regions import Regions, border_regions, mat_regions, paper_regions
from qc_model.mat import DEFAULT_MAT, MatDetection, MatSpec, detect_mat, work_copy
from qc_model.mat import find_mat as _find_mat  # locate_piece's `find_mat` flag shadows the name

Box = tuple[int, int, int, int]  # (x0, y0, x1, y1), x1/y1 exclusive, input-image pixels

# Lightness counts less than chroma: soft shadows and vignetting change L* but hardly a*/b*.
L_WEIGHT = 0.5
# Hysteresis on the colour difference: a component is kept only if part of it differs strongly
# (seed), so faint shadows alone never become a piece, yet a piece keeps its faint edges.
LOW_FLOOR, HIGH_FLOOR = 6.0, 10.0
NOISE_K = 5.0


@dataclass(frozen=True)
class PieceLocation:
    """The piece(s) in a photo, in the input image's pixel grid."""

    mask: NDArray[np.uint8]  # (H, W) 0/255
    boxes: list[Box]  # one per piece component, largest first
    bbox: Box  # union of boxes
    area_fraction: float  # mask pixels / frame pixels
    touches_edge: bool  # the piece is cut off by the frame
    # The detection given or found here. Masking uses it only with >= 2 markers (one marker
    # fixes the scale, not the perspective); otherwise the card is found by its brightness.
    mat: MatDetection | None

    @property
    def count(self) -> int:
        return len(self.boxes)

    def enlarged(self, factor: int, shape: tuple[int, int]) -> PieceLocation:
        """The same location on the (H, W) `shape` photo `factor` times larger than the one it
        was found on (each pixel of this one a factor x factor block there)."""
        h, w = shape

        def box(b: Box) -> Box:
            return (
                min(w, b[0] * factor),
                min(h, b[1] * factor),
                min(w, b[2] * factor),
                min(h, b[3] * factor),
            )

        big = np.zeros((h, w), np.uint8)
        mh, mw = self.mask.shape
        up = cv2.resize(self.mask, (mw * factor, mh * factor), interpolation=cv2.INTER_NEAREST)[
            :h, :w
        ]
        big[: up.shape[0], : up.shape[1]] = up
        return replace(
            self,
            mask=big,
            boxes=[box(b) for b in self.boxes],
            bbox=box(self.bbox),
            mat=self.mat.enlarged(factor) if self.mat is not None else None,
        )


def locate_piece(
    image_bgr: NDArray[np.uint8],
    mat: MatDetection | None = None,
    *,
    find_mat: bool = True,
    spec: MatSpec = DEFAULT_MAT,
    work: NDArray[np.uint8] | None = None,
) -> PieceLocation | None:
    """Segment the piece(s); None when nothing looks like one.

    The background is the card's paper: located by its markers (`mat`, given or detected here
    when `find_mat`), else as the largest bright region, else the whole frame is modelled.
    Fingers and clutter reaching onto the card from outside are left out (docs/MODEL.md).
    `work` is `work_copy(image_bgr)` when the caller has made it already.
    """
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
        raise ValueError(
            f"expected a uint8 BGR image (H, W, 3), got {image_bgr.dtype} {image_bgr.shape}"
        )
    h, w = image_bgr.shape[:2]
    small = work_copy(image_bgr) if work is None else work
    if mat is None and find_mat:
        gray = np.asarray(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY), np.uint8)
        if spec != DEFAULT_MAT:
            mat = detect_mat(gray, spec)
        else:
            mat = _find_mat(
                gray, work=np.asarray(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), np.uint8)
            )
    sh, sw = small.shape[:2]
    sx, sy = sw / w, sh / h
    scale = sw / w
    # One pass from uint8 to float32 in 0..1 (the same values as astype then divide).
    unit = np.divide(small, np.float32(255.0), dtype=np.float32)
    lab = np.asarray(cv2.cvtColor(unit, cv2.COLOR_BGR2Lab), np.float32)

    regions = None
    if mat is not None and len(mat.marker_ids) >= 2:
        # One marker fixes the scale but not the perspective well enough to mask the others.
        to_work = np.diag([sx, sy, 1.0]) @ mat.mat_to_image()
        regions = mat_regions(to_work, spec, (sh, sw), mat.px_per_mm * scale)
    if regions is None:
        regions = paper_regions(lab, spec) or border_regions(sh, sw)
    if cv2.countNonZero(regions.fit) < 50:
        return None
    diff = _difference_from_background(lab, regions.fit, quadratic=regions.quadratic)
    mask = _segment(diff, regions)
    if mask is None:
        return None
    return _to_input_grid(mask, (h, w), mat)


def _design(x: NDArray[np.float64], y: NDArray[np.float64], quadratic: bool) -> NDArray:
    terms = [np.ones_like(x), x, y, x * y]
    if quadratic:
        terms += [x * x, y * y]
    return np.stack(terms, axis=-1)


def _difference_from_background(
    lab: NDArray[np.float32], fit_region: NDArray[np.uint8], *, quadratic: bool
) -> NDArray[np.float32]:
    """Weighted Lab distance of each pixel from a smooth background surface fitted robustly.

    A low-order surface follows uneven light across the card; iterative outlier rejection keeps
    the piece itself (and its shadow) out of the fit.
    """
    h, w = lab.shape[:2]
    # cv2.findNonZero lists the same points in the same (row-major) order as np.nonzero, at a
    # third of the cost on the work grid.
    nz = cv2.findNonZero(fit_region)
    pts = np.empty((0, 2), np.int32) if nz is None else nz.reshape(-1, 2)
    step = max(1, len(pts) // 3000)
    xs, ys = pts[::step, 0].astype(np.intp), pts[::step, 1].astype(np.intp)
    xn = xs.astype(np.float64) * (2.0 / max(w - 1, 1)) - 1.0
    yn = ys.astype(np.float64) * (2.0 / max(h - 1, 1)) - 1.0
    a = _design(xn, yn, quadratic)  # (N, P)
    v = lab[ys, xs].astype(np.float64)  # (N, 3)
    weights = np.array([L_WEIGHT, 1.0, 1.0])
    keep = np.ones(len(xs), bool)
    coef = np.zeros((a.shape[1], 3))
    for _ in range(4):
        ak = a[keep]
        # Normal equations: a 6x6 solve, far cheaper than lstsq on thousands of rows.
        coef = np.linalg.solve(ak.T @ ak + 1e-9 * np.eye(a.shape[1]), ak.T @ v[keep])
        r = np.sqrt((((v - a @ coef) ** 2) * weights).sum(axis=1))
        keep = r <= max(3.0 * float(np.median(r[keep])), 2.0)
        if keep.sum() < a.shape[1] * 4:
            break
    # The surface is smooth: evaluate it on a coarse grid and interpolate up.
    gh, gw = max(2, h // 8), max(2, w // 8)
    gx, gy = np.meshgrid(np.linspace(-1.0, 1.0, gw), np.linspace(-1.0, 1.0, gh))
    coarse = (_design(gx, gy, quadratic) @ coef).astype(np.float32)  # (gh, gw, 3)
    bg = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)
    delta = cv2.subtract(lab, bg)
    sq = cv2.multiply(delta, delta)
    d2 = cv2.transform(sq, weights.astype(np.float32).reshape(1, 3))  # (h, w)
    return np.asarray(cv2.sqrt(d2), np.float32)


def _segment(diff: NDArray[np.float32], regions: Regions) -> NDArray[np.uint8] | None:
    """Hysteresis threshold, clean-up, intruder and speck removal; the mask on the work grid."""
    h, w = diff.shape
    roi, px_per_mm = regions.roi, regions.px_per_mm
    paper = diff[regions.fit > 0][::7]  # a sample is enough for noise statistics
    med = float(np.median(paper))
    mad = float(np.median(np.abs(paper - med))) * 1.4826
    low = max(LOW_FLOOR, med + NOISE_K * mad)
    high = max(HIGH_FLOOR, 1.5 * low)
    cand = ((diff > low) & (roi > 0)).astype(np.uint8) * 255
    # Close small gaps (specular highlights, bead strings, the masked print line) within 1.5 mm.
    k = max(3, round(1.5 * px_per_mm) | 1) if px_per_mm else max(3, round(0.006 * max(h, w)) | 1)
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    closed = cv2.morphologyEx(cand, cv2.MORPH_CLOSE, disk)
    cand = np.asarray(cv2.morphologyEx(closed, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)), np.uint8)
    cand &= roi
    n, labels, stats, _ = cv2.connectedComponentsWithStats(cand, connectivity=8)
    if n <= 1:
        return None
    ok = np.zeros(n, bool)
    ok[labels[(diff > high) & (cand > 0)]] = True  # components holding a seed
    areas = stats[:, cv2.CC_STAT_AREA].astype(np.float64)
    # Dust and crumbs: under ~3 mm x 3 mm, or tiny next to the main piece.
    min_area = 9.0 * px_per_mm**2 if px_per_mm else 4e-4 * h * w
    ok &= areas >= min_area
    ok[0] = False
    if regions.outside is not None and regions.connect is not None:
        inside = ok.copy()
        inside[labels[_intruders(diff > low, regions) & (cand > 0)]] = False
        # A big piece may reach the card's edge too: drop intruders only if something is left.
        if inside.any():
            ok = inside
    if not ok.any():
        return None
    ok &= areas >= 0.02 * areas[ok].max()
    return _keep(labels, ok)


def _keep(labels: NDArray[Any], ok: NDArray[np.bool_]) -> NDArray[np.uint8]:
    """255 where the pixel's label is kept: one uint8 table lookup per pixel."""
    return np.where(ok, 255, 0).astype(np.uint8)[labels]


def _intruders(differs: NDArray[np.bool_], regions: Regions) -> NDArray[np.bool_]:
    """Differing pixels joined to the area off the card: fingers holding it, clutter on its edge."""
    assert regions.outside is not None and regions.connect is not None
    full = (differs & (regions.connect > 0)).astype(np.uint8)
    # Across the printed line only wide things connect (fingers), not the thin line itself.
    wide = cv2.morphologyEx(differs.astype(np.uint8), cv2.MORPH_OPEN, np.ones((7, 7), np.uint8))
    full |= wide & (regions.connect == 0)
    n, labels = cv2.connectedComponents(full, connectivity=8)
    bad = np.zeros(n, bool)
    bad[labels[(regions.outside > 0) & (full > 0)]] = True  # components reaching outside
    bad[0] = False
    return bad[labels]


def _to_input_grid(
    small_mask: NDArray[np.uint8], shape: tuple[int, int], mat: MatDetection | None
) -> PieceLocation | None:
    h, w = shape
    mask = _upsample(small_mask, (h, w)) if small_mask.shape != (h, w) else small_mask
    # Components and edges are looked at on the mask's box only: the frame can be 12 MP.
    bx, by, bw, bh = cv2.boundingRect(mask)
    if bw == 0 or bh == 0:
        return None
    n, _, stats, _ = cv2.connectedComponentsWithStats(
        mask[by : by + bh, bx : bx + bw], connectivity=8
    )
    comps = sorted(range(1, n), key=lambda i: -stats[i, cv2.CC_STAT_AREA])
    boxes: list[Box] = []
    for i in comps:
        x, y, cw, ch, _area = (int(v) for v in stats[i])
        boxes.append((bx + x, by + y, bx + x + cw, by + y + ch))
    if not boxes:
        return None
    bbox = (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )
    touches = bbox[0] == 0 or bbox[1] == 0 or bbox[2] == w or bbox[3] == h
    area = float(stats[1:, cv2.CC_STAT_AREA].sum()) / (h * w)
    return PieceLocation(mask, boxes, bbox, area, touches, mat)


def _upsample(small_mask: NDArray[np.uint8], shape: tuple[int, int]) -> NDArray[np.uint8]:
    """The work-grid mask on the input grid: linear upsampling then a 50 % cut gives smooth
    boundaries instead of blocky ones. Only the mask's box (plus a pixel) is resampled, with
    the same pixel-centre mapping as a full `cv2.resize`, so the cost follows the piece's size."""
    h, w = shape
    sh, sw = small_mask.shape
    mask = np.zeros((h, w), np.uint8)
    x, y, bw, bh = cv2.boundingRect(small_mask)
    if bw == 0 or bh == 0:
        return mask
    rx, ry = sw / w, sh / h  # input px -> work px
    x0, y0 = max(0, int(np.floor((x - 1) / rx))), max(0, int(np.floor((y - 1) / ry)))
    x1, y1 = (
        min(w, int(np.ceil((x + bw + 1) / rx)) + 1),
        min(h, int(np.ceil((y + bh + 1) / ry)) + 1),
    )
    m = np.array([[rx, 0.0, (x0 + 0.5) * rx - 0.5], [0.0, ry, (y0 + 0.5) * ry - 0.5]])
    up = cv2.warpAffine(
        small_mask,
        m,
        (x1 - x0, y1 - y0),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    mask[y0:y1, x0:x1] = np.where(up >= 128, 255, 0).astype(np.uint8)
    return mask
