"""Render one physical piece to a shaded, anti-aliased layer with its masks and true measures."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from numpy.typing import NDArray

from training.synth import defects as dfx
from training.synth.collar import draw_collar
from training.synth.pieces_flat import build_pendant
from training.synth.pieces_round import build_cuff, build_hoop, build_ring, build_stud
from training.synth.pieces_strand import build_chain, build_collar, build_strand
from training.synth.raster import F32, Canvas
from training.synth.sampling import PieceSpec
from training.synth.shade import finish_layer, shade
from training.synth.shape import COMP, CORD, Shape, Sheet, Sphere, Wire
from training.synth.surface import apply_texture, lab_linear, materials, paint_beads

BUILDERS = {
    "hoop_earring": build_hoop,
    "stud_earring": build_stud,
    "beaded_bracelet": build_strand,
    "beaded_necklace": build_strand,
    "beaded_collar": build_collar,
    "cuff": build_cuff,
    "pendant": build_pendant,
    "chain_necklace": build_chain,
    "ring": build_ring,
}


@dataclass
class PieceLayer:
    """A rendered piece in its own frame: pixel (i, j) centres at origin + ((j, i) + 0.5) / k."""

    rgba: F32  # (H, W, 4) BGR in sRGB 0..255 premultiplied by alpha, then alpha in 0..1
    comp: NDArray[np.int16]  # (H, W) component id, -1 where none
    masks: dict[str, NDArray[np.bool_]]  # defect label -> (H, W)
    origin_mm: tuple[float, float]
    px_per_mm: float
    dims: dict[str, float]  # true size per design measure, mm
    count: int | None  # components actually present
    shape: Shape = field(repr=False)

    @property
    def rgb(self) -> F32:
        return self.rgba[..., :3]

    @property
    def alpha(self) -> F32:
        return self.rgba[..., 3]


_SHAPES: dict[tuple[object, ...], Shape] = {}


def build_shape(spec: PieceSpec) -> Shape:
    """The piece's geometry; the same for every photo of the same physical piece."""
    key = (
        spec.design.id,
        spec.seed,
        spec.index,
        tuple(sorted(spec.dims.items())),
        spec.defects,
        spec.aspect,
    )
    shape = _SHAPES.get(key)
    if shape is None:
        if len(_SHAPES) > 64:  # a worker sees each piece for a few photos only
            _SHAPES.clear()
        shape = BUILDERS[spec.design.piece_type](spec, np.random.default_rng([spec.seed, 1]))
        _SHAPES[key] = shape
    return shape


def _supersample(px_per_mm: float, shape: Shape) -> int:
    """Render so the finest round feature spans >= ~5 px: enough for its profile to shade
    smoothly. A 0.6 mm chain wire needs it; 12 mm beads do not (and cost most pixels)."""
    if shape.collar is not None:  # procedural seed beads, 3-4 mm each
        return 1
    radii = [p.radius for p in shape.prims if isinstance(p, (Wire, Sphere)) and p.role != CORD]
    radii += [1.0 for p in shape.prims if isinstance(p, Sheet)]
    finest = min(radii, default=1.0)
    return int(np.clip(np.ceil(2.5 / finest / px_per_mm), 1, 3))


def render_piece(
    spec: PieceSpec,
    px_per_mm: float,
    light: tuple[float, float, float] = (-0.45, -0.6, 1.0),
    min_mask_mm: float = 0.3,
) -> PieceLayer:
    """Draw, texture, damage and shade one piece at `px_per_mm` (its own frame, mm at 0,0)."""
    shape = build_shape(spec)
    x0, y0, x1, y1 = shape.bounds(pad=2.0)
    ss = _supersample(px_per_mm, shape)
    w, h = int(np.ceil((x1 - x0) * px_per_mm)), int(np.ceil((y1 - y0) * px_per_mm))
    canvas = Canvas((x0, y0), (w * ss, h * ss), px_per_mm * ss)
    roles = materials(spec, canvas)
    colours = spec.comp_labs or (spec.lab,)
    # No two handmade beads are dyed or fired exactly alike: about 1 CIELAB unit apart.
    tint = np.random.default_rng([spec.seed, 5]).normal(0, 0.8, size=(512, 3))
    painted: list[tuple[int, float, float, float]] = []
    for p in shape.prims:
        if isinstance(p, Wire):
            canvas.wire(p.pts, p.radius, roles[p.role], p.closed, p.comp, p.z0, p.flat)
        elif isinstance(p, Sphere):
            lab = np.asarray(colours[p.colour % len(colours)]) + tint[p.colour % 512]
            alb = lab_linear(lab) if p.role == COMP else None
            canvas.sphere(p.c, p.radius, roles[p.role], p.comp, p.z0, p.squash, alb)
            painted.append((p.comp, p.c[0], p.c[1], p.radius))
        elif isinstance(p, Sheet):
            canvas.sheet(p.poly, p.thickness, roles[p.role], p.holes, p.bevel, z0=p.z0)
    if shape.collar is not None:
        draw_collar(canvas, shape, spec, roles)
    apply_texture(canvas, shape.texture, roles, spec.seed)
    if shape.texture == "ceramic" and spec.comp_labs:
        paint_beads(canvas, painted, [*list(spec.comp_labs), (92.0, 0.0, 4.0)], spec.seed)

    masks = _defects(canvas, shape, spec, roles, min_mask_mm)
    sel, radiance = shade(canvas, np.asarray(light, np.float32))
    rgb, alpha = finish_layer(canvas, sel, radiance, ss)
    rgba = np.dstack([rgb[..., ::-1], alpha])  # OpenCV's BGR from here on
    small: dict[str, NDArray[np.bool_]] = {}
    for label, m in masks.items():
        mm = m.astype(np.float32)
        if ss > 1:
            mm = cv2.resize(mm, (w, h), interpolation=cv2.INTER_AREA)
        small[label] = mm > 0.05
    comp = canvas.comp[ss // 2 :: ss, ss // 2 :: ss][:h, :w].copy()
    dims = {d.measure: shape.measure(d.measure) for d in spec.design.dimensions}
    return PieceLayer(rgba, comp, small, (x0, y0), px_per_mm, dims, shape.count, shape)


def _defects(
    canvas: Canvas, shape: Shape, spec: PieceSpec, roles: dict[str, int], min_mm: float
) -> dict[str, NDArray[np.bool_]]:
    d = spec.design
    target = roles[COMP] if d.material == "ceramic" else roles["body"]
    surface = (canvas.mat == target) & (canvas.cover > 0.5)
    out: dict[str, NDArray[np.bool_]] = {}
    for label in sorted(spec.defects):
        if label == "scratch":
            out[label] = dfx.scratch(canvas, shape, surface, spec.seed, min_mm)
        elif label == "tarnish":
            out[label] = dfx.tarnish(canvas, surface, spec.seed, target, d.material)
        elif label == "pitting":
            out[label] = dfx.pitting(canvas, shape, surface, spec.seed, min_mm)
        elif label == "finish_flaw":
            out[label] = dfx.finish_flaw(canvas, surface, spec.seed, target)
        elif label in shape.regions:
            out[label] = dfx.rasterise(canvas, shape.regions[label])
    return out
