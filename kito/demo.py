"""`kito demo`: a running service a newcomer can click through, seeded over its own HTTP API.

Starts the service (bundled model, embedded SQLite and photo folder), creates an admin, a QC
user and an artisan, an order of three pieces of one design, and submits one synthetic photo
per piece: one the model passes, one it fails and one the photo gate sends back for a retake.
The photos come from the synthetic renderer. Each is the first of a few seeded candidates
that the service's own inspector judges as wanted; the demo says how many it tried. Then it
prints the tokens and the page URLs and keeps serving until Ctrl-C.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import cv2

from qc_model.catalog import Design
from qc_model.decode import decode_photo
from qc_model.errors import DataError
from serving.core.settings import Settings
from serving.inspection.submission import decode_plan_for

DEMO_DESIGN = "KQ-BBR-MAASAI-190"  # beadwork: the bundled model's most reliable design
PAYOUT_MINOR = 45_000  # KES 450.00 per piece
CANDIDATES = 24  # seeded renders tried per wanted verdict
# Long side of the demo's photos: what the artisan page uploads (serving/web/static/photo.js),
# ~5.2 px/mm on the card, the scale the bundled model's surface branch was trained at.
DEMO_SIZE = 2048


@dataclass
class Shot:
    piece_id: str
    want: str  # the verdict this photo was picked for
    jpeg: bytes
    tried: int


@dataclass
class DemoResult:
    base_url: str
    tokens: dict[str, str]
    order_id: str
    verdicts: dict[str, str]  # piece id -> verdict the running service returned
    tried: dict[str, int] = field(default_factory=dict)
    found: dict[str, list[str]] = field(default_factory=dict)  # piece id -> defects flagged


def render_candidates(design: Design, want: str, size: int = DEMO_SIZE) -> list[bytes]:
    """Seeded JPEG renders likely to get `want`: clean pieces, broken pieces, blurred shots."""
    from training.synth.photo import make_item, render_photo

    out = []
    for k in range(CANDIDATES):
        defect_rate = 1.0 if want == "fail" else 0.0
        item = make_item(design, seed=2026, piece=k, defect_rate=defect_rate)
        force: tuple[str, ...] = ("defocus_blur", "underexposed") if want == "retake" else ()
        difficulty = 1.0 if want == "retake" else 0.0
        photo = render_photo(item, 2026, k, 0, size, difficulty, force)
        ok, buf = cv2.imencode(".jpg", photo.image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        if ok:
            out.append(buf.tobytes())
    return out


def pick_shots(app: Any, design: Design, piece_ids: list[str]) -> list[Shot]:
    """For each wanted verdict, the first candidate the service's inspector gives it."""
    inspector = app.state.inspector_status.inspector
    if inspector is None:
        raise DataError(f"no model loaded: {app.state.inspector_status.reason}")
    # Decoded as the service decodes an upload of this design for this model.
    plan = decode_plan_for(app.state.settings.decode_limits, design, inspector)
    limits = plan.limits(app.state.settings.decode_limits)
    shots = []
    for piece_id, want in zip(piece_ids, ("pass", "fail", "retake"), strict=True):
        candidates = render_candidates(design, want)
        for tried, jpeg in enumerate(candidates, start=1):
            photo = decode_photo(jpeg, limits=limits)
            if inspector.inspect([photo], design, plan).verdict == want:
                shots.append(Shot(piece_id, want, jpeg, tried))
                break
        else:
            # Still show the piece; the verdict it gets is whatever the model says.
            shots.append(Shot(piece_id, want, candidates[0], len(candidates)))
    return shots


def seed_users(app: Any) -> dict[str, tuple[int, str]]:
    from serving.core.auth import create_user

    stamp = datetime.now(UTC).strftime("%H%M%S")
    out = {}
    with app.state.sessionmaker() as session:
        for role, name in (("admin", "Amani"), ("qc", "Neema"), ("artisan", "Wanjiru")):
            user, token = create_user(session, name=f"{name} (demo {stamp})", role=role)
            out[role] = (user.id, token)  # create_user commits each user with its audit entry
    return out


def run_demo(
    settings: Settings,
    *,
    serve_forever: bool = True,
    echo: Callable[[str], None] = print,
    design_id: str = DEMO_DESIGN,
) -> DemoResult:
    import httpx
    import uvicorn

    from kito.ports import ensure_port_free
    from serving.app import create_app

    ensure_port_free(settings.host, settings.port)
    app = create_app(settings)
    design = app.state.catalog.get(design_id)
    if design is None:
        raise DataError(f"design {design_id!r} is not in the catalog {settings.catalog_dir}")
    server = uvicorn.Server(
        uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="kito-demo-server", daemon=True)
    thread.start()
    base = f"http://{settings.host}:{settings.port}"
    try:
        _wait_ready(server, thread, base)
        users = seed_users(app)
        tokens = {role: token for role, (_, token) in users.items()}
        order_id = "DEMO-" + datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        pieces = [f"{order_id}-P{i}" for i in (1, 2, 3)]
        echo(f"rendering demo photos of {design.id} ({design.name}) ...")
        shots = pick_shots(app, design, pieces)
        with httpx.Client(base_url=base, timeout=60) as client:
            qc = {"Authorization": f"Bearer {tokens['qc']}"}
            order = {
                "id": order_id,
                "artisan_id": users["artisan"][0],
                "currency": "KES",
                "pieces": [
                    {"piece_id": p, "design_id": design.id, "payout_minor": PAYOUT_MINOR}
                    for p in pieces
                ],
            }
            _ok(client.post("/api/v1/orders", json=order, headers=qc), "create the order")
            artisan = {"Authorization": f"Bearer {tokens['artisan']}"}
            verdicts, found = {}, {}
            for shot in shots:
                r = client.post(
                    "/api/v1/inspections",
                    headers={**artisan, "Idempotency-Key": f"{shot.piece_id}-1"},
                    data={"design_id": design.id, "piece_id": shot.piece_id, "order_id": order_id},
                    files={"photos": (f"{shot.piece_id}.jpg", shot.jpeg, "image/jpeg")},
                )
                body = _ok(r, f"submit {shot.piece_id}")
                verdicts[shot.piece_id] = body["verdict"]
                found[shot.piece_id] = _flagged(body)
        tried = {s.piece_id: s.tried for s in shots}
        result = DemoResult(base, tokens, order_id, verdicts, tried, found)
        _print(result, shots, echo)
        if serve_forever:
            echo("serving; Ctrl-C stops it")
            while thread.is_alive():
                thread.join(timeout=1.0)
        return result
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _wait_ready(server: Any, thread: threading.Thread, base: str) -> None:
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive():
            raise DataError(
                f"the service could not start on {base} "
                "(is the port in use? --port N chooses another)"
            )
        if time.monotonic() > deadline:
            raise DataError(f"the service did not start on {base} within 30 s")
        time.sleep(0.05)


def _ok(response: Any, what: str) -> dict[str, Any]:
    if response.status_code >= 400:
        raise DataError(f"demo could not {what}: HTTP {response.status_code} {response.text}")
    body: dict[str, Any] = response.json()
    return body


def _print(result: DemoResult, shots: list[Shot], echo: Callable[[str], None]) -> None:
    echo("")
    echo(f"Kito QC demo on {result.base_url}")
    echo(f"  artisan page  {result.base_url}/app   (phone-first)")
    echo(f"  QC desk       {result.base_url}/qc")
    echo(f"  API docs      {result.base_url}/docs")
    echo("tokens (shown once; paste one into a page to sign in):")
    for role, token in result.tokens.items():
        echo(f"  {role:8s} {token}")
    echo(f"order {result.order_id}: 3 pieces at KES {PAYOUT_MINOR / 100:.2f} each")
    for shot in shots:
        got = result.verdicts[shot.piece_id]
        note = "" if got == shot.want else f" (wanted {shot.want}; the model decided)"
        echo(f"  {shot.piece_id}: {got}{note}, photo picked from {shot.tried} seeded render(s)")
    echo("What the pages show:")
    for piece_id, got in result.verdicts.items():
        echo(f"  {piece_id}: {_guide(got, result.found.get(piece_id, []))}")
    echo(
        "  Artisan: the order's payment reads 'Not paid yet' until every piece is accepted, then "
        "'Payment pending' until the payout is delivered, then 'Payment sent'."
    )


# What each verdict looks like on the artisan's card and what QC should do with it. The desk
# must not be told to approve a piece the model failed: its photo shows the defect.
_CARD = {
    "pass": "artisan card 'Accepted'; nothing for QC",
    "retake": "artisan card 'Needs a new photo' with what to do (English or Kiswahili); "
    "not in the QC queue",
    "review": "artisan card 'Waiting for QC'; on the QC desk the model was unsure: look at the "
    "piece (the photo opens zoomed to it, F shows it whole) and decide",
    "fail": "artisan card 'Waiting for QC'; on the QC desk the photo opens zoomed to the piece "
    "with the heatmap over {what}: if you see it, tick it and reject (R)",
}


def _guide(verdict: str, found: list[str]) -> str:
    what = ", ".join(found) if found else "what the model found"
    return _CARD.get(verdict, f"verdict {verdict}").format(what=what)


def _flagged(inspection: dict[str, Any]) -> list[str]:
    verdict = (inspection.get("result") or {}).get("verdict") or {}
    return [str(d).replace("_", " ") for d in verdict.get("defects") or []]
