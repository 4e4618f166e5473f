"""Corpus: broken multipart bodies and bad form fields and headers on the upload (missing,
duplicated, over-long and injected values)."""

from __future__ import annotations

from corpus_case import (
    DESIGN,
    INJECTIONS,
    OTHER_ORDER,
    UPLOAD,
    Case,
    _form,
    _good_parts,
    _multipart,
    upload,
)
from photo_samples import jpeg


def request_cases() -> list[Case]:
    mp = "multipart/form-data"
    cases = [
        Case(
            "multipart_wrong_boundary",
            "POST",
            UPLOAD,
            400,
            "bad_request",
            content=_multipart("realboundary", _good_parts()),
            headers={"Content-Type": f"{mp}; boundary=otherboundary"},
        ),
        Case(
            "multipart_no_boundary",
            "POST",
            UPLOAD,
            400,
            "bad_request",
            content=_multipart("realboundary", _good_parts()),
            headers={"Content-Type": mp},
        ),
        Case(
            "multipart_cut_inside_the_photo",
            "POST",
            UPLOAD,
            422,
            "validation_error",
            content=_multipart("b0undary", _good_parts())[:-400],
            headers={"Content-Type": f"{mp}; boundary=b0undary"},
            error_field="photos",
            why="the unfinished part is dropped by the parser: the photo is missing, not cut",
        ),
        Case(
            "json_body_to_upload",
            "POST",
            UPLOAD,
            422,
            "validation_error",
            json={"design_id": DESIGN, "piece_id": "P-1", "photos": ["/etc/passwd"]},
        ),
        Case(
            "photos_sent_as_text",
            "POST",
            UPLOAD,
            422,
            "validation_error",
            form=_form(photos="/etc/passwd"),
        ),
        upload("missing_photos", 422, "validation_error", photos=[], error_field="photos"),
        upload(
            "missing_design_id", 422, "validation_error", design_id=None, error_field="design_id"
        ),
        upload("missing_piece_id", 422, "validation_error", piece_id=None, error_field="piece_id"),
        upload(
            "duplicated_design_id",
            422,
            "duplicate_field",
            design_id=[DESIGN, "KQ-STUD-BR-12"],
            error_field="design_id",
        ),
        upload(
            "duplicated_piece_id",
            422,
            "duplicate_field",
            piece_id=["P-1", "P-2"],
            error_field="piece_id",
        ),
        upload(
            "seven_photos",
            422,
            "too_many_photos",
            photos=[(f"p{i}.jpg", jpeg(300 + i, 240), "image/jpeg") for i in range(7)],
            error_field="photos",
        ),
        upload(
            "order_of_another_artisan",
            422,
            "unknown_order",
            order_id=OTHER_ORDER,
            error_field="order_id",
        ),
        upload("design_id_10k_chars", 422, "validation_error", design_id="K" * 10_000),
        upload(
            "piece_id_unicode",
            422,
            "validation_error",
            piece_id="kipande-💍",
            error_field="piece_id",
        ),
        upload(
            "idempotency_key_129_chars",
            422,
            "validation_error",
            headers={"Idempotency-Key": "k" * 129},
            error_field="idempotency-key",
        ),
        upload(
            "idempotency_key_8kb",
            422,
            "validation_error",
            headers={"Idempotency-Key": "k" * 8192},
            error_field="idempotency-key",
        ),
        upload(
            "idempotency_key_with_spaces",
            422,
            "validation_error",
            headers={"Idempotency-Key": "' OR 1=1 --"},
            error_field="idempotency-key",
        ),
    ]
    for label, text in INJECTIONS.items():
        cases += [
            upload(
                f"design_id_{label}", 422, "unknown_design", design_id=text, error_field="design_id"
            ),
            upload(
                f"piece_id_{label}", 422, "validation_error", piece_id=text, error_field="piece_id"
            ),
            upload(
                f"order_id_{label}", 422, "validation_error", order_id=text, error_field="order_id"
            ),
        ]
    return cases
