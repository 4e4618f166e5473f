"""A piece's geometry in millimetres (its own frame, centred on 0): primitives, outline, truth."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from numpy.typing import NDArray

Pts = NDArray[np.float64]

# Material roles: the renderer maps each to a Material for the design at hand.
BODY, COMP, CORD, SETTING = "body", "comp", "cord", "setting"


@dataclass
class Wire:
    pts: Pts
    radius: float
    role: str = BODY
    closed: bool = False
    comp: int = -1
    z0: float = 0.0
    flat: float = 1.0


@dataclass
class Sphere:
    c: tuple[float, float]
    radius: float
    role: str = COMP
    comp: int = -1
    z0: float = 0.0
    squash: float = 1.0
    colour: int = 0  # index into the piece's component colours


@dataclass
class Sheet:
    poly: Pts
    thickness: float
    role: str = BODY
    holes: tuple[Pts, ...] = ()
    bevel: float = 0.8
    z0: float = 0.0


@dataclass
class Region:
    """Where a defect is, in mm: a disc or a thick polyline."""

    pts: Pts
    radius: float


@dataclass
class Shape:
    prims: list[Wire | Sphere | Sheet] = field(default_factory=list)
    outline: Pts = field(default_factory=lambda: np.zeros((0, 2)))
    loop_length: float | None = None
    count: int | None = None  # components actually present
    centrelines: list[Pts] = field(default_factory=list)  # where scratches may run
    regions: dict[str, list[Region]] = field(default_factory=dict)
    texture: str = "polished"
    collar: dict[str, float] | None = None  # concentric bead bands (beaded collar)
    collar_r: Pts | None = None  # outer radius per degree of a (possibly bent) collar
    bands: list[tuple[float, float, float]] = field(default_factory=list)  # band colours, Lab

    def add_outline(self, pts: Pts, radius: float = 0.0) -> None:
        pts = np.asarray(pts, np.float64).reshape(-1, 2)
        if radius > 0:
            a = np.linspace(0, 2 * np.pi, 16, endpoint=False)
            ring = np.stack([np.cos(a), np.sin(a)], 1) * radius
            pts = (pts[:, None, :] + ring[None]).reshape(-1, 2)
        self.outline = np.concatenate([self.outline, pts])

    def region(self, label: str, pts: Pts, radius: float) -> None:
        self.regions.setdefault(label, []).append(
            Region(np.asarray(pts, np.float64).reshape(-1, 2), radius)
        )

    def bounds(self, pad: float = 2.0) -> tuple[float, float, float, float]:
        p = self.outline
        return (
            float(p[:, 0].min() - pad),
            float(p[:, 1].min() - pad),
            float(p[:, 0].max() + pad),
            float(p[:, 1].max() + pad),
        )

    def measure(self, measure: str) -> float:
        """True size by the catalog's definition of each measure (qc_model.catalog.Measure)."""
        pts = self.outline.astype(np.float32)
        if measure == "outer_diameter":
            return 2.0 * float(cv2.minEnclosingCircle(pts)[1])
        if measure in {"length", "width"}:
            (_, _), (w, h), _ = cv2.minAreaRect(pts)
            return float(max(w, h) if measure == "length" else min(w, h))
        if measure == "loop_length":
            if self.loop_length is None:
                raise ValueError("this shape is not a loop")
            return float(self.loop_length)
        raise ValueError(f"unknown measure {measure!r}")


def polyline_length(pts: Pts, closed: bool) -> float:
    p = np.asarray(pts, np.float64)
    if closed:
        p = np.concatenate([p, p[:1]])
    return float(np.sum(np.linalg.norm(np.diff(p, axis=0), axis=1)))


def resample(pts: Pts, n: int, closed: bool) -> tuple[Pts, Pts]:
    """`n` points evenly spaced by arc length along a polyline, and their unit tangents."""
    p = np.asarray(pts, np.float64)
    if closed:
        p = np.concatenate([p, p[:1]])
    seg = np.linalg.norm(np.diff(p, axis=0), axis=1)
    s = np.concatenate([[0], np.cumsum(seg)])
    total = s[-1]
    t = np.arange(n) * total / n if closed else np.linspace(0, total, n)
    x = np.interp(t, s, p[:, 0])
    y = np.interp(t, s, p[:, 1])
    out = np.stack([x, y], 1)
    tan = np.gradient(out, axis=0)
    if closed:
        tan = np.roll(out, -1, 0) - np.roll(out, 1, 0)
    tan /= np.maximum(np.linalg.norm(tan, axis=1, keepdims=True), 1e-9)
    return out, tan


def rotate(pts: Pts, angle: float) -> Pts:
    c, s = np.cos(angle), np.sin(angle)
    return np.asarray(pts) @ np.array([[c, s], [-s, c]])


def loop_curve(length: float, aspect: float, wobble: float, rng: np.random.Generator) -> Pts:
    """A closed, smooth, slightly irregular loop whose centre-line is exactly `length` mm."""
    t = np.linspace(0, 2 * np.pi, 720, endpoint=False)
    r = np.ones_like(t)
    for k in (2, 3, 4):
        r += wobble / k * rng.normal() * np.cos(k * t + rng.uniform(0, 2 * np.pi))
    pts = np.stack([aspect * r * np.cos(t), r * np.sin(t)], 1)
    return pts * (length / polyline_length(pts, closed=True))
