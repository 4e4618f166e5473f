"""Can the spec checks' own measurements tell one piece from another of its design (`same_piece`,
issue 29)?

Handmade pieces differ in size and finish, and the renderer gives each piece its own (its
`dims_mm` and `finish_lab`), photographing it again (`--photos-per-piece`) under other capture
conditions. Each photo the gate passes is measured by `run_spec_checks` as the service does; a
design's photos are described by every measurement its checks all report (sizes in mm, finish
colour, component count, pair size and colour), standardised within the design. Pairs of
photos of one piece should be closer than pairs of two pieces of that design: printed, the
share of one-piece pairs matched at the distance that matches 0.1, 1 and 5 % of two-piece
pairs. (bench/bench_design_mismatch.py asks the same of the network's embedding.)

python -m research.same_piece_probe --data DIR   (DIR: kito data synth ... --photos-per-piece 2)
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from qc_model.catalog import default_catalog_dir, load_catalog
from qc_model.decode import decode_photo
from qc_model.gate import check_photo
from qc_model.manifest import Manifest
from qc_model.spec_checks import run_spec_checks


def measurements(data: Path) -> dict[str, list[tuple[str, dict[str, float]]]]:
    """design -> [(piece id, {check name: measured value})] for the photos the gate passes."""
    catalog = load_catalog(default_catalog_dir())
    out: dict[str, list[tuple[str, dict[str, float]]]] = defaultdict(list)
    for r in tqdm(Manifest.read(data).records, desc="spec checks", unit="photo"):
        design = catalog.get(r.design_id or "")
        if design is None:
            continue
        image = decode_photo((data / r.image).read_bytes()).image
        gate = check_photo(image, design)
        if not gate.passed:
            continue
        checks = run_spec_checks(image, design, mat=gate.mat, location=gate.location)
        out[design.id].append(
            (r.piece_id, {c.name: c.measured for c in checks if c.measured is not None})
        )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True)
    a = p.parse_args()
    same: list[float] = []
    diff: list[float] = []
    for items in measurements(a.data).values():
        if len(items) < 3:
            continue
        keys = sorted(set.intersection(*(set(f) for _, f in items)))
        if not keys:
            continue
        x = np.array([[f[k] for k in keys] for _, f in items], np.float64)
        x = (x - x.mean(0)) / (x.std(0) + 1e-9)
        pieces = np.array([pc for pc, _ in items])
        d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
        iu = np.triu_indices(len(items), 1)
        one = pieces[iu[0]] == pieces[iu[1]]
        same += d[iu][one].tolist()
        diff += d[iu][~one].tolist()
    s, f = np.asarray(same), np.asarray(diff)
    print(f"{len(s)} pairs of one piece, {len(f)} pairs of two pieces of one design")
    print("| false matches (two pieces) | distance | pairs of one piece matched |")
    print("|---:|---:|---:|")
    for rate in (0.001, 0.01, 0.05):
        t = float(np.quantile(f, rate))
        print(f"| {rate:.1%} | {t:.3f} | {np.mean(s <= t):.1%} |")


if __name__ == "__main__":
    main()
