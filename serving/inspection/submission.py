"""What one upload asks for: its photos' bytes, the piece it is of, and the decode plan."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property

from qc_model.catalog import Design
from qc_model.decode import DecodeLimits
from qc_model.decode_plan import DecodePlan, plan_decode
from serving.inspection.pipeline import Inspector
from serving.store.storage import content_key


def decode_plan_for(
    limits: DecodeLimits, design: Design, inspector: Inspector | None
) -> DecodePlan:
    """The request's one decode plan: long side at least the service's (`limits`), raised for
    the design's tightest tolerance and to the px/mm the live model reads photos at, so that
    neither is fed an enlarged photo. The inspector measures by the same plan."""
    return plan_decode(
        design,
        floor=limits.target_long_side,
        model_px_per_mm=inspector.min_px_per_mm if inspector is not None else None,
    )


@dataclass(frozen=True)
class UploadedPhoto:
    data: bytes
    filename: str | None
    content_type: str | None

    @cached_property
    def sha256(self) -> str:
        """The bytes' sha256, hashed once for the request's idempotency hash, the photo's store
        key and its decoded record (2 ms of CPU for a 3 MB photo each time)."""
        return content_key(self.data)


@dataclass(frozen=True)
class Submission:
    design_id: str
    piece_id: str
    order_id: str | None
    photos: list[UploadedPhoto]
    idempotency_key: str | None

    def content_hash(self) -> str:
        """What makes two submissions "the same request" for idempotency: fields and photo bytes."""
        doc = {
            "design_id": self.design_id,
            "piece_id": self.piece_id,
            "order_id": self.order_id,
            "photos": [p.sha256 for p in self.photos],
        }
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
