"""Helpers for the upload tests: post an inspection, count what an upload left behind."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from httpx import Response
from photo_samples import jpeg
from sqlalchemy import func, select

from serving.db.models import Inspection, Photo

DESIGN = "KQ-HOOP-BR-30"


def post(
    client: TestClient,
    headers: dict[str, str],
    photos: list[tuple[str, bytes, str]] | None = None,
    key: str | None = None,
    **fields: str,
) -> Response:
    photos = photos if photos is not None else [("a.jpg", jpeg(), "image/jpeg")]
    data = {"design_id": DESIGN, "piece_id": "P-001", **fields}
    h = {**headers, **({"Idempotency-Key": key} if key else {})}
    return client.post(
        "/api/v1/inspections",
        headers=h,
        data=data,
        files=[("photos", p) for p in photos],
    )


def counts(client: TestClient) -> tuple[int, int, int]:
    """(inspection rows, photo rows, photo files) — what an upload may have left behind."""
    with client.app.state.sessionmaker() as s:  # type: ignore[attr-defined]
        n_insp = s.scalar(select(func.count()).select_from(Inspection))
        n_photo = s.scalar(select(func.count()).select_from(Photo))
    root: Path = client.app.state.store.root  # type: ignore[attr-defined]
    n_files = sum(1 for p in root.rglob("*") if p.is_file())
    return n_insp or 0, n_photo or 0, n_files
