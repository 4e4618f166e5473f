"""Reused-photo fingerprints: detection on rendered photos, lookup time, cost per photo.

nice -n 10 python bench/bench_fingerprint.py accuracy --data DIR --copies 3
nice -n 10 python bench/bench_fingerprint.py lookup --sizes 10000,100000,1000000

`accuracy` (bench/fingerprint_accuracy.py) needs a rendered data set from a held-out seed:
kito data synth --out DIR --count 400 --size 1024 --photos-per-piece 2 --seed 29001
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="mode", required=True)
    acc = sub.add_parser("accuracy", help="caught copies and false matches per threshold")
    acc.add_argument("--data", type=Path, required=True, help="rendered data set folder")
    acc.add_argument("--copies", type=int, default=3, help="transformed copies per photo")
    acc.add_argument("--seed", type=int, default=0, help="seed of the transformations")
    acc.add_argument("--thresholds", default="6,8,10,12,14")
    acc.add_argument("--limit", type=int, default=0, help="only the first N photos (0: all)")
    look = sub.add_parser("lookup", help="lookup time in the database index")
    look.add_argument("--sizes", default="10000,100000,1000000")
    look.add_argument("--queries", type=int, default=200)
    look.add_argument("--db", default=None, help="database URL (default: a temporary SQLite)")
    look.add_argument("--bits", type=int, default=None, help="match radius (default: MATCH_BITS)")
    a = p.parse_args()
    if a.mode == "accuracy":
        from fingerprint_accuracy import run

        run(a.data, a.copies, a.seed, [int(t) for t in a.thresholds.split(",")], a.limit)
    else:
        from fingerprint_lookup import run as run_lookup

        from qc_model.fingerprint import MATCH_BITS

        sizes = [int(s) for s in a.sizes.split(",")]
        run_lookup(sizes, a.queries, a.db, a.bits if a.bits is not None else MATCH_BITS)


if __name__ == "__main__":
    main()
