"""What one physical piece is like: true size, finish colour and defects, drawn from a design."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qc_model.catalog import Design
from qc_model.color import delta_e_2000

Lab = tuple[float, float, float]

METALS = {"brass", "copper", "aluminium"}
# Defects drawn on the surface or into the geometry of one piece (the rest are spec defects).
SURFACE = ("scratch", "tarnish", "pitting", "finish_flaw")
GEOMETRY = ("missing_component", "broken_link", "bent")
# Good pieces stay this far inside their tolerance and defective ones this far outside, so a
# label never hangs on a rounding error (fractions of the tolerance).
GOOD_MAX = 0.55
BAD_MIN, BAD_MAX = 1.4, 2.6


@dataclass(frozen=True)
class PieceSpec:
    """One physical piece (one earring of a pair): the renderer draws exactly this."""

    design: Design
    seed: int
    dims: dict[str, float]  # target size per measure, mm
    lab: Lab  # finish colour actually used
    comp_labs: tuple[Lab, ...]  # component colours actually used, in pattern order
    defects: frozenset[str] = frozenset()
    aspect: float = 1.0  # handmade out-of-round (1 = perfect); mismatched pairs go further
    index: int = 0  # 0 or 1 within a pair


@dataclass(frozen=True)
class Item:
    """What the artisan photographs: one piece, or a pair side by side."""

    design: Design
    pieces: tuple[PieceSpec, ...]
    intended: frozenset[str]  # labels the sampler meant to create
    shape_mismatch: bool = False


def applicable_defects(design: Design) -> list[str]:
    """Defects that make sense for this design (no tarnish on glass, no broken stud)."""
    t, m = design.piece_type, design.material
    out: list[str] = []
    if m in METALS or (t == "ring"):
        out += ["scratch", "tarnish", "pitting", "finish_flaw"]
    elif m in {"horn", "bone"} and t == "pendant":
        out += ["scratch", "pitting"]
    elif m == "ceramic":
        out += ["finish_flaw"]
    if design.components is not None and design.components.kind in {"bead", "stone"}:
        out.append("missing_component")
    if t in {"chain_necklace", "beaded_bracelet", "beaded_necklace", "hoop_earring"}:
        out.append("broken_link")
    if t in {"hoop_earring", "ring", "cuff", "beaded_collar"} or (t == "pendant" and m in METALS):
        out.append("bent")
    if design.pair:
        out.append("mismatched_pair")
    out += ["wrong_finish_colour", "wrong_size"]
    return out


def _shift_lab(lab: Lab, target_de: float, rng: np.random.Generator) -> Lab:
    """A colour `target_de` CIEDE2000 units away from `lab`, in a random direction."""
    if target_de <= 0:
        return lab
    base = np.asarray(lab, np.float64)
    for _ in range(20):
        u = rng.normal(size=3) * np.array([1.2, 1.0, 1.0])
        u /= np.linalg.norm(u)
        lo, hi = 0.0, 80.0
        if delta_e_2000(base, np.clip(base + hi * u, [1, -120, -120], [99, 120, 120])) < target_de:
            continue
        for _ in range(18):
            mid = (lo + hi) / 2
            cand = np.clip(base + mid * u, [1, -120, -120], [99, 120, 120])
            if delta_e_2000(base, cand) < target_de:
                lo = mid
            else:
                hi = mid
        out = np.clip(base + hi * u, [1, -120, -120], [99, 120, 120])
        return (float(out[0]), float(out[1]), float(out[2]))
    raise RuntimeError("could not find a colour at the requested distance")


def _piece(
    design: Design,
    seed: int,
    dims: dict[str, float],
    lab: Lab,
    aspect: float,
    index: int,
    defects: frozenset[str],
) -> PieceSpec:
    shift = np.asarray(lab) - np.asarray(design.finish.lab)
    comps: tuple[Lab, ...] = ()
    if design.components is not None and design.components.colours:
        comps = tuple(
            tuple(float(v) for v in np.clip(np.asarray(c) + shift, [1, -120, -120], [99, 120, 120]))
            for c in design.components.colours
        )  # type: ignore[misc]
    return PieceSpec(design, seed, dims, lab, comps, defects, aspect, index)


def sample_item(design: Design, rng: np.random.Generator, defect_rate: float) -> Item:
    """One physical item (piece or pair); `defect_rate` is the chance it has any defect."""
    chosen: set[str] = set()
    if rng.random() < defect_rate:
        options = applicable_defects(design)
        k = min(len(options), int(rng.choice([1, 2, 3], p=[0.72, 0.21, 0.07])))
        chosen = set(rng.choice(options, size=k, replace=False).tolist())

    def frac(bad: bool) -> float:
        return float(rng.uniform(BAD_MIN, BAD_MAX) if bad else rng.uniform(0, GOOD_MAX))

    # Size: one relative factor for all measures, so an oversized pendant is oversized both ways.
    rel_tol = min(d.tolerance_mm / d.nominal_mm for d in design.dimensions)
    max_rel = max(d.tolerance_mm / d.nominal_mm for d in design.dimensions)
    if "wrong_size" in chosen:
        sign = 1.0 if rng.random() < 0.5 else -1.0
        rel = sign * rng.uniform(BAD_MIN, BAD_MAX) * max_rel
    else:
        rel = rng.uniform(-GOOD_MAX, GOOD_MAX) * rel_tol
    dims = {d.measure: d.nominal_mm * (1 + rel) for d in design.dimensions}
    # Handmade pieces vary a little per measure too (a pendant a bit longer than wide).
    for d in design.dimensions:
        dims[d.measure] += rng.uniform(-0.1, 0.1) * d.tolerance_mm
    tol_e = design.finish.delta_e_tolerance
    lab = _shift_lab(design.finish.lab, frac("wrong_finish_colour" in chosen) * tol_e, rng)
    aspect = float(1 + rng.uniform(0, 0.02))
    seed = int(rng.integers(1 << 31))
    visual = frozenset(chosen & (set(SURFACE) | set(GEOMETRY)))
    if not design.pair:
        piece = _piece(design, seed, dims, lab, aspect, 0, visual)
        return Item(design, (piece,), frozenset(chosen))

    # A pair: defects of the surface or shape sit on one earring only.
    on_second = rng.random() < 0.5
    first = _piece(design, seed, dims, lab, aspect, 0, visual if not on_second else frozenset())
    dims2 = {m: v + rng.uniform(-0.12, 0.12) * _tol(design, m) for m, v in dims.items()}
    lab2 = _shift_lab(lab, rng.uniform(0, 0.2) * tol_e, rng)
    aspect2 = float(1 + rng.uniform(0, 0.02))
    shape_mismatch = False
    if "mismatched_pair" in chosen:
        mode = rng.choice(["size", "colour", "shape"])
        if mode == "size":
            sign = 1.0 if rng.random() < 0.5 else -1.0
            dims2 = {m: v + sign * rng.uniform(1.5, 2.2) * _tol(design, m) for m, v in dims.items()}
        elif mode == "colour":
            lab2 = _shift_lab(lab, rng.uniform(1.5, 2.2) * tol_e, rng)
        else:
            aspect2 = float(rng.uniform(1.25, 1.45))
            shape_mismatch = True
    second = _piece(design, seed + 1, dims2, lab2, aspect2, 1, visual if on_second else frozenset())
    return Item(design, (first, second), frozenset(chosen), shape_mismatch)


def _tol(design: Design, measure: str) -> float:
    dim = design.dimension(measure)
    assert dim is not None
    return dim.tolerance_mm
