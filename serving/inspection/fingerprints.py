"""Reused photos: every inspected photo's fingerprint is kept, and a new photo within a few bits
of an earlier photo of ANOTHER piece (any artisan, any time) is not passed: the inspection goes
to review with reason `photo_reused`, naming the earlier inspection, and its piece waits for QC.

The lookup is multi-index hashing in the database: the 64-bit hash is split into three chunks
of 22, 21 and 21 bits (about log2 of a million photos each), each an indexed column. Two hashes
within `r` bits differ in at most floor(r / 3) bits in at least one chunk (pigeonhole), so the
candidates are the rows whose chunk equals one of the new chunk's values within that many bits,
fetched by index; the exact Hamming distance then
filters them, and the piece cells verify the match (qc_model.fingerprint.same_photo). The work
grows with how many stored hashes share a chunk neighbourhood (about n * 760 / 2^21.3 random
ones at an 8-bit radius: ~360 at a million), far slower than n (bench/bench_fingerprint.py
lookup, docs/BENCHMARKS.md).

Two uploads of one photo committed at the same instant can each miss the other (neither is
stored when the other looks); the order lock of the same order serialises them within an order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from itertools import combinations
from typing import Any

from sqlalchemy import Executable, TextClause, select, text
from sqlalchemy.orm import Session

from qc_model.fingerprint import MATCH_BITS, Fingerprint, hamming, same_photo
from qc_model.messages import INTEGRITY_MESSAGES
from serving.db.models import Inspection, PhotoFingerprint

CHUNK_WIDTHS = (22, 21, 21)  # bits, most significant first
CHUNK_COLUMNS = ("c0", "c1", "c2")
REASON = "photo_reused"
# How many earlier photos an inspection's result names (closest first).
MAX_NAMED = 5


@dataclass(frozen=True)
class Match:
    inspection_id: str
    position: int
    piece_id: str
    order_id: str | None
    owner_id: int
    distance: int

    def as_json(self, photo: int) -> dict[str, Any]:
        return {
            "photo": photo,
            "inspection_id": self.inspection_id,
            "position": self.position,
            "piece_id": self.piece_id,
            "order_id": self.order_id,
            "same_artisan": None,  # filled in by the caller, who knows the owner
            "distance_bits": self.distance,
        }


def to_signed(phash: int) -> int:
    """A 64-bit unsigned hash as the signed integer a BIGINT column holds."""
    return phash - (1 << 64) if phash >= 1 << 63 else phash


def to_unsigned(value: int) -> int:
    return value + (1 << 64) if value < 0 else value


def chunks(phash: int) -> list[int]:
    out, shift = [], 64
    for width in CHUNK_WIDTHS:
        shift -= width
        out.append((phash >> shift) & ((1 << width) - 1))
    return out


@cache
def flip_masks(radius: int, width: int) -> tuple[int, ...]:
    """0 and every `width`-bit mask of 1..`radius` set bits (made once per radius and width:
    building them took most of a lookup's Python time)."""
    out = [0]
    for r in range(1, radius + 1):
        out += [sum(1 << b for b in bits) for bits in combinations(range(width), r)]
    return tuple(out)


def neighbours(value: int, radius: int, width: int) -> list[int]:
    """`value` and every `width`-bit value within `radius` bits of it."""
    return [value ^ m for m in flip_masks(radius, width)]


@cache
def _candidate_sql(dialect: str) -> TextClause:
    """One SELECT per chunk, joined by UNION ALL; each chunk's values as one parameter."""
    table = PhotoFingerprint.__tablename__
    if dialect == "postgresql":
        # One bitmap OR over the three indexes; a UNION ALL made PostgreSQL plan parallel
        # workers, whose start cost more than the lookup.
        where = " OR ".join(f"{c} = ANY(CAST(:{c} AS integer[]))" for c in CHUNK_COLUMNS)
        return text(f"SELECT id, phash FROM {table} WHERE {where}")
    return text(
        " UNION ALL ".join(
            f"SELECT id, phash FROM {table} WHERE {c} IN (SELECT value FROM json_each(:{c}))"
            for c in CHUNK_COLUMNS
        )
    )


def candidate_query(phash: int, bits: int, dialect: str = "sqlite") -> Executable:
    """(id, phash) of every row within `bits` of `phash` (and a few more; a row may come
    twice), found by the chunk indexes.

    On SQLite one SELECT per chunk, joined by UNION ALL: each is answered from its index alone
    (chunk, hash, row id; migration 0005); an OR of the three made SQLite collect row ids and
    read every candidate row. Each chunk's few
    hundred values go as ONE parameter: an array (`= ANY`) on PostgreSQL, a JSON list read by
    `json_each` on SQLite. The statement is written once per dialect: as hundreds of IN
    parameters, or built anew by the SQL expression language, making the statement cost more
    than the index lookups."""
    return _candidate_sql(dialect).bindparams(**chunk_params(phash, bits, dialect))


def chunk_params(phash: int, bits: int, dialect: str) -> dict[str, str]:
    """Each chunk column's values within bits // 3 of `phash`'s chunk, as one parameter: an
    array literal ('{1,2,...}', cast by PostgreSQL: psycopg adapting ~250 Python ints an array
    cost ~1.9 ms a lookup) or a JSON list (SQLite's json_each)."""
    radius = bits // len(CHUNK_WIDTHS)
    params = {}
    for name, c, width in zip(CHUNK_COLUMNS, chunks(phash), CHUNK_WIDTHS, strict=True):
        values = neighbours(c, radius, width)
        if dialect == "postgresql":
            params[name] = "{" + ",".join(map(str, values)) + "}"
        else:
            params[name] = json.dumps(values)
    return params


@cache
def _close_rows_sql() -> TextClause:
    table = PhotoFingerprint.__tablename__
    where = " OR ".join(f"{c} = ANY(CAST(:{c} AS integer[]))" for c in CHUNK_COLUMNS)
    distance = "bit_count(CAST(phash # :phash AS bit(64)))"
    return text(f"SELECT * FROM {table} WHERE ({where}) AND {distance} <= :bits")


def close_rows_query(phash: int, bits: int) -> TextClause:
    """PostgreSQL: every whole row within `bits` of `phash`, found by the chunk indexes."""
    params = chunk_params(phash, bits, "postgresql")
    return _close_rows_sql().bindparams(phash=to_signed(phash), bits=bits, **params)


def row_for(fp: Fingerprint, **fields: Any) -> PhotoFingerprint:
    c = chunks(fp.phash)
    doc = fp.as_json()
    return PhotoFingerprint(
        phash=to_signed(fp.phash),
        detail={"cells": doc["cells"]},
        frame=fp.frame,
        c0=c[0],
        c1=c[1],
        c2=c[2],
        **fields,
    )


def find_matches(
    session: Session,
    fp: Fingerprint,
    *,
    bits: int = MATCH_BITS,
    not_piece: tuple[str | None, str] | None = None,
) -> list[Match]:
    """Stored photos that are `fp`'s photo (qc_model.fingerprint.same_photo), closest hash
    first; `not_piece` (order id, piece id) leaves out that piece's own photos (its earlier
    uploads and retakes)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        # One round trip: the server keeps the rows within `bits` (bit_count, PostgreSQL 14+)
        # and sends them whole.
        rows = session.scalars(
            select(PhotoFingerprint).from_statement(close_rows_query(fp.phash, bits))
        )
    else:
        # Two steps: the chunk indexes give candidates (id and hash only), the exact distance
        # keeps a few, and only those few rows are read whole to verify.
        candidates = session.execute(candidate_query(fp.phash, bits, dialect)).all()
        close = {i for i, h in candidates if hamming(fp.phash, to_unsigned(h)) <= bits}
        if not close:
            return []
        rows = session.scalars(select(PhotoFingerprint).where(PhotoFingerprint.id.in_(close)))
    found = []
    for row in rows:
        if not_piece is not None and (row.order_id, row.piece_id) == not_piece:
            continue
        phash = to_unsigned(row.phash)
        doc = {"phash": f"{phash:016x}", "frame": row.frame, **(row.detail or {})}
        if same_photo(fp, Fingerprint.from_json(doc), bits):
            found.append(
                Match(
                    row.inspection_id,
                    row.position,
                    row.piece_id,
                    row.order_id,
                    row.owner_id,
                    hamming(fp.phash, phash),
                )
            )
    return sorted(found, key=lambda m: (m.distance, m.inspection_id))


def check_reused(session: Session, row: Inspection) -> list[dict[str, Any]]:
    """Look up `row`'s photo fingerprints (stored by the inspector in `row.result`), keep them,
    and when a photo matches an earlier photo of another piece: set the verdict to review (a
    pass or a review; a fail or a retake already stops the payout) and record the matches in
    the result. Returns the matches ([] when none). `row` is flushed, not committed."""
    result = row.result or {}
    hashes = result.get("fingerprints") or []
    matches: list[dict[str, Any]] = []
    for photo, doc in enumerate(hashes):
        try:
            fp = Fingerprint.from_json(doc)
        except (KeyError, TypeError, ValueError, IndexError):
            continue  # not a fingerprint (an older inspector's result): nothing to compare
        for m in find_matches(session, fp, not_piece=(row.order_id, row.piece_id)):
            entry = m.as_json(photo)
            entry["same_artisan"] = m.owner_id == row.owner_id
            matches.append(entry)
        session.add(
            row_for(
                fp,
                inspection_id=row.id,
                position=photo,
                owner_id=row.owner_id,
                order_id=row.order_id,
                piece_id=row.piece_id,
            )
        )
    if not matches:
        return []
    matches.sort(key=lambda e: (e["distance_bits"], e["inspection_id"]))
    named = matches[:MAX_NAMED]
    message = INTEGRITY_MESSAGES[REASON]
    integrity = {
        "reason": REASON,
        "matches": named,
        "messages": {"en": message.en, "sw": message.sw},
    }
    new_result: dict[str, Any] = {**result, "integrity": integrity}
    if row.verdict in ("pass", "review"):
        new_result["model_verdict"] = row.verdict
        row.verdict = "review"
        verdict = dict(result.get("verdict") or {})
        reason = {"code": REASON, "text": message.en}
        verdict["decision"] = "review"
        verdict["reasons"] = [reason, *(verdict.get("reasons") or [])]
        new_result["verdict"] = verdict
    row.result = new_result  # a new dict: the JSON column sees the change
    return named
