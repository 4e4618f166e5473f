"""Can the mat frame alone say which design a photo shows (`design_mismatch`, issue 29)?

Each photo of a rendered set that the gate finds a mat in (two markers or more) is rectified to
the placement area as the fingerprint does (qc_model.fingerprint.rectified), and described by
hand-made, scale-true features of what differs from the paper there: its size (cells, spread,
extent), its lightness against the paper and its colour (median a*, b* and a chroma-weighted
hue histogram). Half the pieces are references, the other half queries. A query's distance to
a design is its mean distance to the design's 3 nearest references (features standardised);
its mismatch score is the distance to the DECLARED design over the distance to the nearest
other one. Declared right, a score above the threshold is a false flag; declared as a random
other design, it is a catch. Printed: nearest-design accuracy, and the catch rate at 1, 2 and
5 % false flags.

python -m research.design_probe --data DIR      (DIR: kito data synth ... --seed 29002)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from qc_model.decode import decode_photo
from qc_model.fingerprint import CELLS_INSET_MM, rectified
from qc_model.gate import check_photo
from qc_model.manifest import Manifest
from qc_model.mat import DEFAULT_MAT

GRID = (128, 80)  # ~1.7 mm cells over the placement area
PIECE = 0.12  # a cell differs from the paper around it by this fraction: the piece


def describe(image: NDArray[np.uint8]) -> NDArray[np.float64] | None:
    """The features of a decoded photo, None without a usable mat or piece."""
    mat = check_photo(image).mat
    if mat is None or len(mat.marker_ids) < 2:
        return None
    x0, y0, x1, y1 = DEFAULT_MAT.placement_area_mm
    i = CELLS_INSET_MM
    colour = rectified(image, mat, (x0 + i, y0 + i, x1 - i, y1 - i), GRID).astype(np.float32)
    grey = colour.mean(axis=2)
    contrast = grey / np.maximum(cv2.GaussianBlur(grey, (0, 0), 10), 1.0) - 1.0
    piece = np.abs(contrast) > PIECE
    n = int(piece.sum())
    if n < 5 or piece.all():
        return None
    lab = cv2.cvtColor(colour / 255.0, cv2.COLOR_BGR2Lab)
    rel = lab[piece] - np.median(lab[~piece], axis=0)  # against the paper: the light drops out
    ys, xs = np.nonzero(piece)
    spread = np.sqrt(np.maximum(np.linalg.eigvalsh(np.cov(np.stack([xs, ys]).astype(float))), 0))
    a, b = rel[:, 1], rel[:, 2]
    hue = np.histogram(np.arctan2(b, a), bins=8, range=(-np.pi, np.pi), weights=np.hypot(a, b))
    return np.array(
        [
            np.log(n),
            *np.log1p(spread),
            np.log1p(np.ptp(xs)),
            np.log1p(np.ptp(ys)),
            *(np.percentile(rel[:, 0], [10, 50, 90]) / 20),
            np.median(a) / 10,
            np.median(b) / 10,
            *(hue[0] / n / 10),
        ]
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    rows: list[tuple[str, str, NDArray[np.float64]]] = []
    for r in Manifest.read(a.data).records:
        f = describe(decode_photo((a.data / r.image).read_bytes()).image)
        if f is not None and r.design_id is not None:
            rows.append((r.design_id, r.piece_id, f))
    x = np.stack([f for _, _, f in rows])
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    designs = sorted({d for d, _, _ in rows})
    rng = np.random.default_rng(a.seed)
    pieces = sorted({pc for _, pc, _ in rows})
    ref_pieces = set(rng.choice(pieces, len(pieces) // 2, replace=False).tolist())
    is_ref = np.array([pc in ref_pieces for _, pc, _ in rows])
    label = np.array([d for d, _, _ in rows])
    right, wrong, top1 = [], [], 0
    for q in np.flatnonzero(~is_ref):
        dist = {}
        for d in designs:
            ds = np.sort(np.linalg.norm(x[is_ref & (label == d)] - x[q], axis=1))
            dist[d] = float(ds[:3].mean()) if len(ds) else np.inf
        top1 += min(dist, key=dist.__getitem__) == label[q]
        declared = label[q]
        right.append(dist[declared] / min(v for d, v in dist.items() if d != declared))
        others = [d for d in designs if d != declared]
        other = others[int(rng.integers(len(others)))]
        wrong.append(dist[other] / min(v for d, v in dist.items() if d != other))
    right_a, wrong_a = np.array(right), np.array(wrong)
    n_q = len(right_a)
    print(
        f"{len(rows)} photos with a mat and a piece, {len(designs)} designs;"
        f" {int(is_ref.sum())} references, {n_q} queries; nearest design right:"
        f" {top1 / n_q:.1%}"
    )
    print("| false flags (declared right) | threshold | wrong design caught |")
    print("|---|---|---|")
    for ff in (0.01, 0.02, 0.05):
        t = float(np.quantile(right_a, 1 - ff))
        print(f"| {ff:.0%} | {t:.2f} | {np.mean(wrong_a > t):.1%} |")


if __name__ == "__main__":
    main()
