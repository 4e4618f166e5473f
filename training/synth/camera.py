"""A phone camera over the table: pinhole projection of the mat plane (mm) to image pixels."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

H3 = NDArray[np.float64]

# Focal length as a fraction of the frame width: the ~26 mm (equivalent) main camera of a phone.
FOCAL_FRACTION = 0.85


def _axis_rotation(axis: NDArray[np.float64], angle: float) -> H3:
    a = axis / np.linalg.norm(axis)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


def plane_to_image(
    frame: tuple[int, int],
    target_mm: tuple[float, float],
    px_per_mm: float,
    roll_deg: float = 0.0,
    tilt_deg: float = 0.0,
    tilt_azimuth_deg: float = 0.0,
    offset_px: tuple[float, float] = (0.0, 0.0),
) -> H3:
    """Homography mat mm -> image px: `target_mm` lands at the frame centre (+ offset) at
    `px_per_mm`, seen through a camera tilted `tilt_deg` off vertical and rolled `roll_deg`."""
    w, h = frame
    f = FOCAL_FRACTION * w
    dist = f / px_per_mm
    az = np.radians(tilt_azimuth_deg)
    tilt = _axis_rotation(np.array([np.cos(az), np.sin(az), 0.0]), np.radians(tilt_deg))
    roll = _axis_rotation(np.array([0.0, 0.0, 1.0]), np.radians(roll_deg))
    r = roll @ tilt
    k = np.array([[f, 0, w / 2 + offset_px[0]], [0, f, h / 2 + offset_px[1]], [0, 0, 1]])
    ext = np.column_stack([r[:, 0], r[:, 1], [0.0, 0.0, dist]])
    shift = np.array([[1, 0, -target_mm[0]], [0, 1, -target_mm[1]], [0, 0, 1]], np.float64)
    hom = k @ ext @ shift
    return hom / hom[2, 2]


def project(hom: H3, pts: NDArray[np.floating]) -> NDArray[np.float64]:
    p = np.asarray(pts, np.float64).reshape(-1, 2)
    q = np.column_stack([p, np.ones(len(p))]) @ hom.T
    return q[:, :2] / q[:, 2:3]


def local_scale(hom: H3, pt_mm: tuple[float, float]) -> float:
    """Image px per mm around a plane point (geometric mean of the two axes)."""
    p = np.array([pt_mm, (pt_mm[0] + 1, pt_mm[1]), (pt_mm[0], pt_mm[1] + 1)])
    q = project(hom, p)
    return float(np.sqrt(np.linalg.norm(q[1] - q[0]) * np.linalg.norm(q[2] - q[0])))


def visible_window(hom: H3, frame: tuple[int, int], limit: tuple[float, float, float, float]):
    """Plane bbox (x0, y0, x1, y1) in mm seen by the frame, clipped to `limit`."""
    w, h = frame
    corners = np.array(
        [[0, 0], [w, 0], [w, h], [0, h], [w / 2, 0], [w / 2, h], [0, h / 2], [w, h / 2]]
    )
    back = project(np.linalg.inv(hom), corners)
    x0, y0 = back.min(0)
    x1, y1 = back.max(0)
    return (max(x0, limit[0]), max(y0, limit[1]), min(x1, limit[2]), min(y1, limit[3]))
