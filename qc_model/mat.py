"""The printed calibration mat: geometry of its ArUco markers, shared by renderer and detector.

Artisans place each piece on an A4 card (landscape) with eight ArUco markers of known size around
its border. Any one marker seen whole fixes the scale; the photo gate asks for two, so that a
single misdetection cannot set a wrong size. Coordinates are millimetres on the card, origin at
its top-left corner, x to the right, y down.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

import cv2
import numpy as np
from numpy.typing import NDArray

ARUCO_DICTIONARY = cv2.aruco.DICT_4X4_50
MARKER_MODULES = 6  # a marker's side: 4 bits and a one-module black border on each side
# The piece location and the marker search work on a copy whose longer side is at most this;
# masks and corners are mapped back to the input's pixels.
WORK_SIZE = 768
# Markers are looked for on a copy whose longer side is at most this (the piece location's work
# copy, made once for both), then their corners are refined on the photo itself: the search's
# cost grows with the pixel count, and a 22 mm marker still spans ~45 px at this size on a
# framed card (found as reliably as at 1024 px on the synthetic sets, docs/BENCHMARKS.md).
MAT_DETECT_SIDE = WORK_SIZE


@dataclass(frozen=True)
class MatSpec:
    width_mm: float = 297.0
    height_mm: float = 210.0
    marker_mm: float = 22.0
    margin_mm: float = 8.0
    # Card colour (sRGB): a warm off-white, like ordinary printer paper.
    paper_rgb: tuple[int, int, int] = (238, 236, 230)

    @cached_property
    def marker_origins_mm(self) -> dict[int, tuple[float, float]]:
        """Top-left corner of each marker by id: four corners, then the middle of each edge."""
        m, s = self.margin_mm, self.marker_mm
        right, bottom = self.width_mm - m - s, self.height_mm - m - s
        cx, cy = (self.width_mm - s) / 2, (self.height_mm - s) / 2
        return {
            0: (m, m),
            1: (right, m),
            2: (right, bottom),
            3: (m, bottom),
            4: (cx, m),
            5: (right, cy),
            6: (cx, bottom),
            7: (m, cy),
        }

    def marker_corners_mm(self, marker_id: int) -> NDArray[np.float64]:
        """The 4 corners of a marker (TL, TR, BR, BL: ArUco's order), shape (4, 2)."""
        x, y = self.marker_origins_mm[marker_id]
        s = self.marker_mm
        return np.array([[x, y], [x + s, y], [x + s, y + s], [x, y + s]], dtype=np.float64)

    @property
    def placement_area_mm(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of the area inside the marker ring where a piece is laid."""
        inset = self.margin_mm + self.marker_mm + 4.0
        return (inset, inset, self.width_mm - inset, self.height_mm - inset)

    def render(self, px_per_mm: float) -> NDArray[np.uint8]:
        """The mat as a BGR image at the given scale (also used to print it)."""
        w, h = round(self.width_mm * px_per_mm), round(self.height_mm * px_per_mm)
        img = np.empty((h, w, 3), np.uint8)
        img[:] = self.paper_rgb[::-1]
        dictionary = cv2.aruco.getPredefinedDictionary(ARUCO_DICTIONARY)
        for marker_id, (x, y) in self.marker_origins_mm.items():
            side = round(self.marker_mm * px_per_mm)
            # A white quiet zone is part of the printed marker; the paper provides it.
            tag = cv2.aruco.generateImageMarker(dictionary, marker_id, side)
            x0, y0 = round(x * px_per_mm), round(y * px_per_mm)
            img[y0 : y0 + side, x0 : x0 + side] = tag[..., None]
        # Thin dotted border around the placement area tells the artisan where the piece goes.
        x0, y0, x1, y1 = (round(v * px_per_mm) for v in self.placement_area_mm)
        colour = (190, 188, 184)
        step = max(2, round(4 * px_per_mm))
        for x in range(x0, x1, step * 2):
            cv2.line(img, (x, y0), (min(x + step, x1), y0), colour, 1)
            cv2.line(img, (x, y1), (min(x + step, x1), y1), colour, 1)
        for y in range(y0, y1, step * 2):
            cv2.line(img, (x0, y), (x0, min(y + step, y1)), colour, 1)
            cv2.line(img, (x1, y), (x1, min(y + step, y1)), colour, 1)
        return img


DEFAULT_MAT = MatSpec()


@dataclass(frozen=True)
class MatDetection:
    """Where the mat lies in a photo: a homography from image pixels to mat millimetres."""

    image_to_mat: NDArray[np.float64]  # (3, 3)
    marker_ids: tuple[int, ...]
    px_per_mm: float  # mean marker scale in the photo
    reprojection_error_mm: float

    def to_mat(self, points_px: NDArray[np.floating]) -> NDArray[np.float64]:
        """Image points (N, 2) to mat millimetres (N, 2)."""
        pts = np.asarray(points_px, dtype=np.float64).reshape(-1, 1, 2)
        out = cv2.perspectiveTransform(pts, self.image_to_mat).reshape(-1, 2)
        return np.asarray(out, dtype=np.float64)

    def mat_to_image(self) -> NDArray[np.float64]:
        return np.asarray(np.linalg.inv(self.image_to_mat), dtype=np.float64)

    def enlarged(self, factor: int) -> MatDetection:
        """The same detection on the photo `factor` times larger than the one it was made on
        (each pixel of this one a factor x factor block there; pixel centres at integers)."""
        off = (factor - 1) / (2.0 * factor)
        to_small = np.array([[1 / factor, 0, -off], [0, 1 / factor, -off], [0, 0, 1]])
        return replace(
            self,
            image_to_mat=np.asarray(self.image_to_mat @ to_small, np.float64),
            px_per_mm=self.px_per_mm * factor,
        )


def _aruco_detector() -> cv2.aruco.ArucoDetector:
    params = cv2.aruco.DetectorParameters()
    params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
    return cv2.aruco.ArucoDetector(cv2.aruco.getPredefinedDictionary(ARUCO_DICTIONARY), params)


def detect_mat(gray: NDArray[np.uint8], spec: MatSpec = DEFAULT_MAT) -> MatDetection | None:
    """Find the mat's markers in a grayscale photo; None when no valid marker is seen."""
    corners, ids = detect_markers(gray)
    return mat_from_markers(corners, ids, spec)


def detect_markers(gray: NDArray[np.uint8]) -> tuple[list[NDArray[np.float32]], list[int]]:
    """ArUco markers in a grayscale image: corners (4, 2) each, sub-pixel refined, and ids."""
    corners, ids, _ = _aruco_detector().detectMarkers(gray)
    if ids is None:
        return [], []
    return [np.asarray(c, np.float32).reshape(4, 2) for c in corners], [int(i) for i in ids.ravel()]


def refine_corners(gray: NDArray[np.uint8], quad: NDArray[np.floating]) -> NDArray[np.float32]:
    """A marker's corners (4, 2), estimated elsewhere (on a smaller copy), refined on `gray` the
    way the detector refines its own: a window of 0.3 module (at most 5 px) around each corner.
    The stopping accuracy is tighter than the detector's 0.1 px: the estimate starts up to a
    pixel off, and sizes are measured from these corners."""
    pts = np.array(quad, np.float32).reshape(4, 1, 2)  # a copy: cornerSubPix works in place
    module = float(np.linalg.norm(pts - np.roll(pts, 1, axis=0), axis=2).sum()) / (
        4 * MARKER_MODULES
    )
    win = min(5, max(1, round(0.3 * module)))
    criteria = (cv2.TERM_CRITERIA_MAX_ITER | cv2.TERM_CRITERIA_EPS, 30, 0.01)
    refined = cv2.cornerSubPix(gray, pts, (win, win), (-1, -1), criteria)
    return np.asarray(refined, np.float32).reshape(4, 2)


def mat_from_markers(
    corners: list[NDArray[np.float32]], ids: list[int], spec: MatSpec = DEFAULT_MAT
) -> MatDetection | None:
    """The mat's homography from detected markers; None when no valid marker is among them."""
    img_pts: list[NDArray[np.float64]] = []
    mat_pts: list[NDArray[np.float64]] = []
    found: list[int] = []
    scales: list[float] = []
    for c, marker_id in zip(corners, ids, strict=True):
        if marker_id not in spec.marker_origins_mm or marker_id in found:
            continue
        quad = c.reshape(4, 2).astype(np.float64)
        found.append(marker_id)
        img_pts.append(quad)
        mat_pts.append(spec.marker_corners_mm(marker_id))
        side_px = np.mean(np.linalg.norm(quad - np.roll(quad, 1, axis=0), axis=1))
        scales.append(float(side_px) / spec.marker_mm)
    if not found:
        return None
    src = np.concatenate(img_pts)
    dst = np.concatenate(mat_pts)
    if len(found) == 1:
        h, _ = cv2.findHomography(src, dst, 0)
    else:
        h, _ = cv2.findHomography(src, dst, cv2.RANSAC, 1.5)
    if h is None:
        return None
    proj = cv2.perspectiveTransform(src.reshape(-1, 1, 2), h).reshape(-1, 2)
    err = float(np.sqrt(np.mean(np.sum((proj - dst) ** 2, axis=1))))
    return MatDetection(
        image_to_mat=np.asarray(h, dtype=np.float64),
        marker_ids=tuple(sorted(found)),
        px_per_mm=float(np.mean(scales)),
        reprojection_error_mm=err,
    )


def work_copy(image: NDArray[np.uint8], max_side: int = WORK_SIZE) -> NDArray[np.uint8]:
    """`image` shrunk by area averaging to a longer side of at most `max_side` (itself when it
    is that small already): the copy the piece location and the marker search work on.

    Area averaging at a fractional factor is the slowest step left in the gate (5.5 ms from a
    1008 px photo, 12.5 ms from 2016 px, one thread), but it stays: whole-factor block means
    then bilinear took 0.8 and 1.9 ms and located pieces as well against the renderer's truth,
    yet moved crops enough that tests/serving/test_serving_retrain_loop.py's small challenger
    lost one holdout photo of recall and failed its promotion gate.
    """
    h, w = image.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1.0:
        return image
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), np.uint8)


def find_mat(
    gray: NDArray[np.uint8],
    max_side: int = MAT_DETECT_SIDE,
    *,
    work: NDArray[np.uint8] | None = None,
) -> MatDetection | None:
    """The mat in `gray`: markers searched on a copy bounded to `max_side` (`work`, when the
    caller has made it), their corners refined on `gray` itself, so the homography and the
    scale keep the photo's own precision."""
    h, w = gray.shape
    if max(h, w) <= max_side:
        return detect_mat(gray)
    small = work_copy(gray, max_side) if work is None else work
    corners, ids = detect_markers(small)
    # Pixel centres: x = (x_small + 0.5) * w / w_small - 0.5.
    to_full = np.array([w / small.shape[1], h / small.shape[0]], np.float32)
    refined = [refine_corners(gray, (c + 0.5) * to_full - 0.5) for c in corners]
    return mat_from_markers(refined, ids)
