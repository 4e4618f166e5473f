"""Declared design on held-out photos: wrong-design photos caught and right ones flagged, at the
package's own threshold; and how well the same descriptor tells one piece from another of its
design (the `same_piece` question).

Each photo of a rendered data set (a seed the references were not fitted on) is seen as the
service sees it (training.identity_fit.Describer: reduced, gated with its catalog design, cropped
where the gate found the piece). Declared as its own design, a flag is a false flag; declared as
each other design in turn (and as one drawn at random, the issue's wording), a flag is a catch.
Also printed: the nearest design's accuracy, per-design rates, and the check's own CPU time per
photo (the descriptor's size and the distances; the embedding comes with the network's run).

Same piece: the synthetic renderer photographs each piece `--photos-per-piece` times under
different capture conditions, and every piece of a design has its own variation. A pair of
photos of one piece should be closer than any pair of two pieces of the same design: the
recall at the distance that falsely matches 1 % of different-piece pairs is printed.

nice -n 10 python bench/bench_design_mismatch.py --package models/default --data DIR
(DIR from: kito data synth --out DIR --count 1600 --size 1024 --photos-per-piece 2 --seed 29005)
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from qc_model.identity import design_distances, mismatch_ratio
from qc_model.manifest import Manifest
from qc_model.package import MODEL_FILE, load_package
from training.identity_fit import Described, Describer, describe_records


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--package", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    pkg = load_package(a.package, threads=1)
    if pkg.identity is None:
        raise SystemExit(f"{a.package}: no design references (kito identity fit)")
    ref, refs = pkg.identity.ref, pkg.identity.refs
    manifest = Manifest.read(a.data)
    t0 = time.perf_counter()
    describer = Describer(a.package / MODEL_FILE, pkg.meta.preprocess, ref.size_weight)
    rows = [r for r in describe_records(describer, manifest.records, a.data) if r.design in refs]
    wall = time.perf_counter() - t0
    print(
        f"{len(rows)} of {len(manifest.records)} photos the gate passes with a mat, of "
        f"{len(refs)} referenced designs ({wall:.0f} s); threshold {ref.threshold:.3f}"
    )
    sizes = describer.size_ms
    print(
        f"check CPU per photo, the piece's size on the mat: p50 {np.median(sizes):.2f} ms,"
        f" p99 {np.percentile(sizes, 99):.2f} ms"
    )
    design_table(rows, refs, ref.k, ref.threshold, np.random.default_rng(a.seed))
    same_piece(rows)


def design_table(rows: list[Described], refs, k: int, threshold: float, rng) -> None:  # type: ignore[no-untyped-def]
    own, wrong_random, wrong_all, top1, costs = [], [], [], 0, []
    by: dict[str, list[tuple[bool, float]]] = defaultdict(list)
    for r in rows:
        t0 = time.process_time()
        dist = design_distances(refs, r.desc, k)
        ratio, _ = mismatch_ratio(dist, r.design)
        costs.append((time.process_time() - t0) * 1e3)
        top1 += min(dist, key=dist.__getitem__) == r.design
        own.append(ratio > threshold)
        others = [d for d in dist if d != r.design]
        pick = others[int(rng.integers(len(others)))]
        wrong_random.append(mismatch_ratio(dist, pick)[0] > threshold)
        caught = [mismatch_ratio(dist, d)[0] > threshold for d in others]
        wrong_all += caught
        by[r.design].append((ratio > threshold, float(np.mean(caught))))
    n = len(rows)
    print(f"nearest design right: {top1 / n:.1%} ({top1}/{n})")
    print("| declared | photos | flagged |")
    print("|---|---:|---:|")
    print(f"| its own design (false flags) | {n} | {np.mean(own):.2%} ({sum(own)}) |")
    print(
        f"| a random other design (caught) | {n} | {np.mean(wrong_random):.2%} "
        f"({sum(wrong_random)}) |"
    )
    print(f"| each other design in turn (caught) | {len(wrong_all)} | {np.mean(wrong_all):.2%} |")
    print(
        f"check CPU per photo (distances to {sum(len(v) for v in refs.values())} references):"
        f" p50 {np.median(costs):.2f} ms, p99 {np.percentile(costs, 99):.2f} ms"
    )
    print("| design | photos | false flags | caught (declared as each other design) |")
    print("|---|---:|---:|---:|")
    for d in sorted(by):
        flags, caught = zip(*by[d], strict=True)
        print(f"| {d} | {len(flags)} | {np.mean(flags):.1%} | {np.mean(caught):.1%} |")


def same_piece(rows: list[Described]) -> None:
    by_design: dict[str, list[Described]] = defaultdict(list)
    for r in rows:
        by_design[r.design].append(r)
    same, diff = [], []
    for group in by_design.values():
        x = np.stack([r.desc for r in group]).astype(np.float64)
        d = np.sqrt(np.maximum(((x[:, None] - x[None]) ** 2).sum(-1), 0))
        pieces = np.array([r.piece for r in group])
        iu = np.triu_indices(len(group), 1)
        is_same = pieces[iu[0]] == pieces[iu[1]]
        same += d[iu][is_same].tolist()
        diff += d[iu][~is_same].tolist()
    if not same:
        print("same piece: no piece has two photos the gate passes")
        return
    s, f = np.asarray(same), np.asarray(diff)
    print(f"same piece: {len(s)} pairs of one piece, {len(f)} pairs of two pieces of one design")
    print("| false matches (two pieces) | distance | same-piece pairs matched |")
    print("|---:|---:|---:|")
    for rate in (0.001, 0.01, 0.05):
        t = float(np.quantile(f, rate))
        print(f"| {rate:.1%} | {t:.4f} | {np.mean(s <= t):.1%} |")


if __name__ == "__main__":
    main()
