"""Reused photos: every inspected photo's fingerprint is kept, and a new photo within a few bits
of an earlier photo of ANOTHER piece (any artisan, any time) is not passed: the inspection goes
to review with reason `photo_reused`, naming the earlier inspection, and its piece waits for QC.

The lookup is multi-index hashing in the database: the 64-bit hash is split into four 16-bit
chunks, each an indexed column. Two hashes within `r` bits differ in at most floor(r / 4) bits
in at least one chunk (pigeonhole), so the candidates are the rows whose chunk equals one of the
new chunk's values within that many bits, fetched by index; the exact Hamming distance then
filters them, and the piece cells and paper tint verify the match (qc_model.fingerprint). The work depends on how many stored hashes share a chunk neighbourhood, not on
how many there are (bench/bench_fingerprint.py lookup, docs/BENCHMARKS.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from qc_model.fingerprint import MATCH_BITS, Fingerprint, hamming, same_photo
from qc_model.messages import INTEGRITY_MESSAGES
from serving.db.models import Inspection, PhotoFingerprint

CHUNKS = 4
CHUNK_BITS = 16
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
    mask = (1 << CHUNK_BITS) - 1
    return [(phash >> (CHUNK_BITS * (CHUNKS - 1 - i))) & mask for i in range(CHUNKS)]


def neighbours(value: int, radius: int) -> list[int]:
    """`value` and every CHUNK_BITS-bit value within `radius` bits of it."""
    out = [value]
    for r in range(1, radius + 1):
        for bits in combinations(range(CHUNK_BITS), r):
            flipped = value
            for b in bits:
                flipped ^= 1 << b
            out.append(flipped)
    return out


def row_for(fp: Fingerprint, **fields: Any) -> PhotoFingerprint:
    c = chunks(fp.phash)
    doc = fp.as_json()
    return PhotoFingerprint(
        phash=to_signed(fp.phash),
        detail={"cells": doc["cells"], "tint": doc["tint"]},
        frame=fp.frame,
        c0=c[0],
        c1=c[1],
        c2=c[2],
        c3=c[3],
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
    radius = bits // CHUNKS
    columns = (PhotoFingerprint.c0, PhotoFingerprint.c1, PhotoFingerprint.c2, PhotoFingerprint.c3)
    where = [
        col.in_(neighbours(c, radius)) for col, c in zip(columns, chunks(fp.phash), strict=True)
    ]
    rows = session.execute(
        select(
            PhotoFingerprint.phash,
            PhotoFingerprint.frame,
            PhotoFingerprint.detail,
            PhotoFingerprint.inspection_id,
            PhotoFingerprint.position,
            PhotoFingerprint.piece_id,
            PhotoFingerprint.order_id,
            PhotoFingerprint.owner_id,
        ).where(or_(*where))
    ).all()
    found = []
    for stored, frame, detail, inspection_id, position, piece_id, order_id, owner_id in rows:
        if not_piece is not None and (order_id, piece_id) == not_piece:
            continue
        phash = to_unsigned(stored)
        other = Fingerprint.from_json({"phash": f"{phash:016x}", "frame": frame, **(detail or {})})
        if same_photo(fp, other, bits):
            d = hamming(fp.phash, phash)
            found.append(Match(inspection_id, position, piece_id, order_id, owner_id, d))
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
