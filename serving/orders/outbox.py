"""The payout outbox dispatcher: deliver each payout to the payment webhook, at least once.

One pass (`Dispatcher.run_once`):
1. claim due rows in a short transaction: not delivered, `next_attempt_at <= now`. PostgreSQL:
   SELECT ... FOR UPDATE SKIP LOCKED, so several dispatchers (replicas, `kito payouts
   dispatch`) take disjoint rows; SQLite: a conditional UPDATE on the attempts counter. The
   claim adds one attempt and moves `next_attempt_at` a lease ahead: if this process dies
   mid-delivery, the row is due again when the lease runs out, and nothing is lost.
2. POST the stored payload as JSON, outside any transaction, with `Idempotency-Key: <payout
   id>`: a receiver that saw the payout before (we died after its 2xx) must not pay it twice.
3. record the outcome: 2xx marks it delivered; anything else schedules a retry after
   min(max, base * 2 ** (attempts - 1)) seconds. It never gives up on a payout.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session, sessionmaker

from serving.core.audit import record
from serving.core.settings import Settings
from serving.db.models import PayoutOutbox

log = logging.getLogger("kito.payouts")
# Past the HTTP timeout, so a slow receiver's answer is recorded before anyone else retries.
_LEASE_SLACK_S = 30.0


@dataclass(frozen=True)
class Claim:
    outbox_id: int
    payout_id: str
    attempt: int
    payload: dict[str, Any]


@dataclass(frozen=True)
class Delivery:
    ok: bool
    detail: str  # "HTTP 201", "HTTP 503: ...", "URLError: ..."


@dataclass
class PassResult:
    claimed: int = 0
    delivered: int = 0
    failed: int = 0


def post_json(
    url: str, payload: dict[str, Any], headers: dict[str, str], timeout: float
) -> Delivery:
    body = json.dumps(payload, sort_keys=True).encode()
    req = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return Delivery(200 <= resp.status < 300, f"HTTP {resp.status}")
    except urllib.error.HTTPError as exc:
        text = exc.read(200).decode("utf-8", "replace").strip()
        return Delivery(False, f"HTTP {exc.code}: {text}" if text else f"HTTP {exc.code}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return Delivery(False, f"{type(exc).__name__}: {exc}")


class Dispatcher:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        url: str,
        *,
        timeout_s: float = 10.0,
        retry_base_s: float = 5.0,
        retry_max_s: float = 3600.0,
        batch: int = 20,
        post: Callable[[str, dict[str, Any], dict[str, str], float], Delivery] = post_json,
    ) -> None:
        self.sessions = sessions
        self.url = url
        self.timeout_s = timeout_s
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.batch = batch
        self.post = post
        self.lease = timedelta(seconds=timeout_s + _LEASE_SLACK_S)

    @classmethod
    def from_settings(cls, sessions: sessionmaker[Session], settings: Settings) -> Dispatcher:
        if not settings.payout_webhook_url:
            raise ValueError("KITO_PAYOUT_WEBHOOK_URL is not set")
        return cls(
            sessions,
            settings.payout_webhook_url,
            timeout_s=settings.payout_webhook_timeout_s,
            retry_base_s=settings.payout_retry_base_s,
            retry_max_s=settings.payout_retry_max_s,
        )

    def backoff(self, attempt: int) -> timedelta:
        return timedelta(seconds=min(self.retry_max_s, self.retry_base_s * 2 ** (attempt - 1)))

    # -- one pass ---------------------------------------------------------------------------
    def run_once(self, now: datetime | None = None) -> PassResult:
        """Claim what is due at `now`, deliver it, record the outcomes."""
        now = now or datetime.now(UTC)
        result = PassResult()
        for claim in self.claim(now):
            result.claimed += 1
            headers = {"Idempotency-Key": claim.payout_id, "Kito-Attempt": str(claim.attempt)}
            delivery = self.post(self.url, claim.payload, headers, self.timeout_s)
            self.settle(claim, delivery, now)
            if delivery.ok:
                result.delivered += 1
            else:
                result.failed += 1
        return result

    def claim(self, now: datetime) -> list[Claim]:
        with self.sessions() as session:
            due = (
                select(PayoutOutbox)
                .where(PayoutOutbox.delivered_at.is_(None), PayoutOutbox.next_attempt_at <= now)
                .order_by(PayoutOutbox.next_attempt_at, PayoutOutbox.id)
                .limit(self.batch)
            )
            if session.get_bind().dialect.name == "postgresql":
                rows = session.scalars(due.with_for_update(skip_locked=True)).all()
                for row in rows:
                    row.attempts += 1
                    row.next_attempt_at = now + self.lease
                claimed = list(rows)
            else:
                claimed = []
                for row in session.scalars(due).all():
                    # Only one claimer moves the counter from the value it read.
                    won: CursorResult[Any] = session.execute(  # type: ignore[assignment]
                        update(PayoutOutbox)
                        .where(
                            PayoutOutbox.id == row.id,
                            PayoutOutbox.attempts == row.attempts,
                            PayoutOutbox.delivered_at.is_(None),
                        )
                        .values(attempts=row.attempts + 1, next_attempt_at=now + self.lease)
                        .execution_options(synchronize_session=False)
                    )
                    if won.rowcount == 1:
                        session.refresh(row)
                        claimed.append(row)
            out = [Claim(r.id, r.payout_id, r.attempts, dict(r.payload)) for r in claimed]
            session.commit()
        return out

    def settle(self, claim: Claim, delivery: Delivery, now: datetime) -> None:
        """Record one attempt's outcome, if the claim is still ours (attempts unchanged)."""
        mine = (
            PayoutOutbox.id == claim.outbox_id,
            PayoutOutbox.attempts == claim.attempt,
            PayoutOutbox.delivered_at.is_(None),
        )
        with self.sessions() as session:
            if delivery.ok:
                values: dict[str, Any] = {"delivered_at": datetime.now(UTC), "last_error": None}
                action = "payout.deliver"
            else:
                retry_at = now + self.backoff(claim.attempt)
                values = {"next_attempt_at": retry_at, "last_error": delivery.detail[:500]}
                action = "payout.attempt"
                log.warning(
                    "payout %s attempt %d failed (%s); next try %s",
                    claim.payout_id,
                    claim.attempt,
                    delivery.detail,
                    retry_at.isoformat(),
                )
            stmt = update(PayoutOutbox).where(*mine).values(**values)
            done: CursorResult[Any] = session.execute(stmt)  # type: ignore[assignment]
            if done.rowcount == 1:
                record(
                    session,
                    actor=None,
                    action=action,
                    entity_type="payout",
                    entity_id=claim.payout_id,
                    attempt=claim.attempt,
                    result=delivery.detail[:200],
                )
            session.commit()

    # -- the loop -----------------------------------------------------------------------------
    def run_forever(self, stop: threading.Event, poll_s: float) -> None:
        """Pass after pass until `stop` is set; waits `poll_s` when there was nothing to do."""
        while not stop.is_set():
            try:
                busy = self.run_once().claimed > 0
            except Exception:  # the database may be down for a while; keep the thread alive
                log.exception("payout dispatch pass failed")
                busy = False
            if not busy:
                stop.wait(poll_s)


class DispatcherThread:
    """The service's background dispatcher, started and stopped with the app."""

    def __init__(self, dispatcher: Dispatcher, poll_s: float) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=dispatcher.run_forever,
            args=(self.stop, poll_s),
            name="kito-payout-dispatcher",
            daemon=True,
        )
        self.join_s = dispatcher.timeout_s + poll_s + 5.0

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(self.join_s)
