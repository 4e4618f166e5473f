"""Lookup time of the reused-photo index (serving.fingerprints) at growing sizes.

The table is filled with random 64-bit hashes; each query is a fresh random hash with a
near-duplicate planted at a random distance up to the radius (random bits flipped), so every
query has one true match to find. Reported: the lookup's wall time (p50 / p95) and how many
candidate rows the chunk indexes returned, and whether every planted match was found.

Random hashes are the index's friendly case: real photo hashes share more chunk values (see
the candidate counts in docs/BENCHMARKS.md for the rendered photos).

nice -n 10 python bench/bench_fingerprint.py lookup --sizes 10000,100000,1000000
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import cast

import numpy as np
from sqlalchemy import (
    Column,
    Index,
    MetaData,
    Table,
    create_engine,
    insert,
    text,
)
from sqlalchemy.orm import Session
from tqdm import tqdm

from qc_model.fingerprint import FRAME_MAT, MATCH_BITS, Fingerprint
from serving.db.models import PhotoFingerprint
from serving.inspection.fingerprints import candidate_query, chunks, find_matches, to_signed

BATCH = 50_000


def _rows(hashes: np.ndarray, start: int) -> list[dict[str, object]]:
    out = []
    for i, h in enumerate(hashes.tolist()):
        c = chunks(h)
        out.append(
            {
                "inspection_id": f"i{start + i}",
                "position": 0,
                "owner_id": 1,
                "order_id": None,
                "piece_id": f"p{start + i}",
                "frame": FRAME_MAT,
                "phash": to_signed(h),
                "detail": {"cells": None},
                "c0": c[0],
                "c1": c[1],
                "c2": c[2],
            }
        )
    return out


def _near(h: int, d: int, rng: np.random.Generator) -> int:
    for b in rng.choice(64, size=d, replace=False).tolist():
        h ^= 1 << b
    return h


def run(sizes: list[int], queries: int, db: str | None, bits: int = MATCH_BITS) -> None:
    rng = np.random.default_rng(0)
    url = db or f"sqlite:///{Path(tempfile.mkdtemp(prefix='bench-fp-')) / 'fp.db'}"
    engine = create_engine(url)
    table = cast(Table, PhotoFingerprint.__table__)
    # The table alone, without its foreign keys (no users or inspections here).
    bare = MetaData()
    copy = Table(
        table.name,
        bare,
        *(Column(c.name, c.type, primary_key=c.primary_key) for c in table.columns),
    )
    for index in table.indexes:
        Index(index.name, *(copy.c[c.name] for c in index.columns), **index.dialect_kwargs)
    with engine.begin() as conn:
        bare.drop_all(conn)
        bare.create_all(conn)
    print(f"database: {engine.dialect.name}; {queries} queries per size; radius {bits} bits")
    print("| stored | lookup ms p50 | p95 | candidates p50 | p95 | planted found |")
    print("|---|---|---|---|---|---|")
    filled = 0
    for size in sorted(sizes):
        with tqdm(total=size - filled, desc=f"fill to {size}", unit="row") as bar:
            while filled < size:
                n = min(BATCH, size - filled)
                hashes = rng.integers(0, 2**64, size=n, dtype=np.uint64, endpoint=False)
                with engine.begin() as conn:
                    conn.execute(insert(table), _rows(hashes, filled))
                filled += n
                bar.update(n)
        # A settled table, as autovacuum leaves one in service: vacuumed (its visibility map
        # set, so autovacuum does not start on the fresh rows while the lookups are timed)
        # and analysed.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text(f"VACUUM ANALYZE {table.name}"))
            else:
                conn.execute(text("ANALYZE"))
        times, candidates, found = [], [], 0
        with Session(engine) as s:
            planted = []
            for q in range(queries):
                h = int(rng.integers(0, 2**64, dtype=np.uint64))
                near = _near(h, int(rng.integers(0, bits + 1)), rng)
                planted.append((h, f"planted-{size}-{q}"))
                s.execute(insert(table), _rows(np.array([near], np.uint64), 10**9 + q))
                s.execute(
                    text(f"UPDATE {table.name} SET piece_id = :p WHERE inspection_id = :i"),
                    {"p": f"planted-{size}-{q}", "i": f"i{10**9 + q}"},
                )
            s.commit()
            for h, piece in planted:
                t0 = time.perf_counter()
                matches = find_matches(s, Fingerprint(h, FRAME_MAT), bits=bits)
                times.append((time.perf_counter() - t0) * 1000)
                found += any(m.piece_id == piece for m in matches)
                candidates.append(_candidates(s, h, bits))
            s.execute(table.delete().where(table.c.piece_id.like(f"planted-{size}-%")))
            s.commit()
        t, c = np.array(times), np.array(candidates)
        print(
            f"| {size:,} | {np.percentile(t, 50):.2f} | {np.percentile(t, 95):.2f} |"
            f" {np.percentile(c, 50):.0f} | {np.percentile(c, 95):.0f} | {found}/{queries} |"
        )
    engine.dispose()


def _candidates(s: Session, h: int, bits: int) -> int:
    """Rows the chunk indexes return for `h` (before the exact distance filter)."""
    rows = s.execute(candidate_query(h, bits, s.get_bind().dialect.name)).all()
    return len({row_id for row_id, _ in rows})
