"""Corpus: the JSON API and query strings (orders, review decisions, list filters, paths and
tokens): malformed, over-deep, wrong-typed, over-long and out-of-range values."""

from __future__ import annotations

from typing import Any

from corpus_case import DESIGN, Case


def _order(**over: Any) -> dict[str, Any]:
    piece = {"piece_id": "P1", "design_id": DESIGN, "payout_minor": 45000}
    body: dict[str, Any] = {"artisan_id": 1, "pieces": [piece]}
    for k, v in over.items():
        if k.startswith("piece_"):
            piece[k.removeprefix("piece_")] = v
        else:
            body[k] = v
    return body


def api_cases() -> list[Case]:
    orders = "/api/v1/orders"
    decision = "/api/v1/reviews/no-such-review/decision"

    def order(name: str, status: int, code: str, error_field: str | None = None, **kw: Any) -> Case:
        return Case(
            name,
            "POST",
            orders,
            status,
            code,
            role="qc",
            json=_order(**kw),
            error_field=error_field,
        )

    cases = [
        Case(
            "order_malformed_json",
            "POST",
            orders,
            422,
            "validation_error",
            role="qc",
            content=b'{"artisan_id": 1, "pieces": [',
            headers={"Content-Type": "application/json"},
        ),
        Case(
            "order_json_nested_100k_deep",
            "POST",
            orders,
            400,
            "bad_request",
            role="qc",
            content=b"[" * 100_000 + b"]" * 100_000,
            headers={"Content-Type": "application/json"},
        ),
        order(
            "order_negative_payout",
            422,
            "validation_error",
            "pieces.0.payout_minor",
            piece_payout_minor=-5,
        ),
        order(
            "order_payout_float",
            422,
            "validation_error",
            "pieces.0.payout_minor",
            piece_payout_minor=1.5,
        ),
        order("order_huge_artisan_id", 422, "validation_error", "artisan_id", artisan_id=10**30),
        order("order_extra_field", 422, "validation_error", "paid", paid=True),
        order("order_currency_injection", 422, "validation_error", "currency", currency="K'; --"),
        order("order_artisan_is_staff", 422, "not_an_artisan", "artisan_id", artisan_id=2),
        Case(
            "order_501_pieces",
            "POST",
            orders,
            422,
            "validation_error",
            role="qc",
            json={
                "artisan_id": 1,
                "pieces": [
                    {"piece_id": f"P{i}", "design_id": DESIGN, "payout_minor": 1}
                    for i in range(501)
                ],
            },
            error_field="pieces",
        ),
        Case(
            "decision_unknown_label",
            "POST",
            decision,
            422,
            "unknown_label",
            role="qc",
            json={"decision": "reject", "labels": ["<script>"]},
            error_field="labels.0",
        ),
        Case(
            "decision_note_nul",
            "POST",
            decision,
            422,
            "validation_error",
            role="qc",
            json={"decision": "reject", "note": "ok\u0000"},
            error_field="note",
        ),
        Case(
            "decision_note_2001_chars",
            "POST",
            decision,
            422,
            "validation_error",
            role="qc",
            json={"decision": "reject", "note": "n" * 2001},
            error_field="note",
        ),
        Case(
            "list_limit_huge",
            "GET",
            "/api/v1/inspections?limit=1000000000",
            422,
            "validation_error",
            error_field="limit",
        ),
        Case(
            "list_offset_negative",
            "GET",
            "/api/v1/inspections?offset=-1",
            422,
            "validation_error",
            error_field="offset",
        ),
        Case("query_nul", "GET", "/api/v1/inspections?design_id=%00", 400, "bad_url"),
        Case("path_nul", "GET", "/api/v1/orders/ORD%00", 400, "bad_url"),
        Case(
            "artisan_id_of_another_artisan",
            "GET",
            "/api/v1/inspections?artisan_id=1",
            403,
            "forbidden",
            role="artisan2",
            error_field="artisan_id",
        ),
        Case(
            "artisan_id_overflow",
            "GET",
            "/api/v1/orders?artisan_id=99999999999999999999",
            422,
            "validation_error",
            role="qc",
            error_field="artisan_id",
        ),
        Case(
            "audit_since_garbage",
            "GET",
            "/api/v1/audit?since=yesterday'--",
            422,
            "validation_error",
            role="admin",
            error_field="since",
        ),
        Case(
            "path_traversal_inspection",
            "GET",
            "/api/v1/inspections/..%2F..%2Fetc%2Fpasswd",
            404,
            "not_found",
        ),
        Case(
            "photo_position_overflow",
            "GET",
            "/api/v1/inspections/x/photos/99999999999999999999",
            404,
            "not_found",
        ),
        Case(
            "bearer_token_10kb",
            "GET",
            "/api/v1/users/me",
            401,
            "unauthorized",
            role="none",
            headers={"Authorization": "Bearer " + "k" * 10_000},
        ),
        Case(
            "basic_auth_instead_of_bearer",
            "GET",
            "/api/v1/users/me",
            401,
            "unauthorized",
            role="none",
            headers={"Authorization": "Basic YWRtaW46YWRtaW4="},
        ),
    ]
    return cases
