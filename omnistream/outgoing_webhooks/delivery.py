"""Posting events to outgoing webhooks: signing, one attempt, retries and disabling.

**What a receiver gets.** A POST with a JSON body
`{"id": <event id>, "type": "message.received", "created_at": ..., "tenant_id": ..., "test": false,
"data": {...}}` and the headers

* `X-OmniStream-Event`: the event type;
* `X-OmniStream-Delivery`: the delivery's id, the same on every attempt of one event to one
  endpoint: a receiver that has seen it already answers 2xx and does nothing again;
* `X-OmniStream-Signature: t=<unix seconds>,v1=<hex>`, where `<hex>` is
  HMAC-SHA256(secret, f"{t}.{body}") over the exact bytes of the body.

**Verifying.** Recompute the HMAC over `t`, a dot and the raw body with the endpoint's secret,
compare it with `v1` in constant time, and refuse the request when `t` is further than a
tolerance (five minutes, say) from the receiver's clock: a captured request replayed later then
fails even though its signature is genuine. `verify` below does exactly that; several `v1`
values may follow each other while a secret is being rotated.

**Retries.** A 2xx answer delivers the event. Anything else (another status, a timeout, a refused
connection, a target that now resolves to a private address) is tried again after `BACKOFF`
(1 min, 5 min, 30 min, 2 h, 5 h, 8 h, 8 h: eight attempts over about a day), then the delivery
has failed. A 410 Gone disables the endpoint at once; an endpoint whose every attempt has failed
for `DISABLE_AFTER` is disabled too, with the reason and time recorded. Deliveries of a disabled
endpoint wait, and continue when it is enabled again.

**Claiming.** Workers claim due deliveries across tenants (`FOR UPDATE SKIP LOCKED`); a claim
counts the attempt and leases the delivery for `LEASE`, so one whose worker died is due again.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import msgspec
import structlog

from omnistream.db import Database
from omnistream.kit.targets import Refused, check_target
from omnistream.outgoing_webhooks import repository
from omnistream.outgoing_webhooks.schemas import HIDDEN
from omnistream.security.secrets import SecretBox

log = structlog.get_logger(__name__)

SIGNATURE_HEADER = "X-OmniStream-Signature"
EVENT_HEADER = "X-OmniStream-Event"
DELIVERY_HEADER = "X-OmniStream-Delivery"
USER_AGENT = "OmniStream-Webhooks/1"
RESERVED_HEADERS = frozenset(
    {"content-type", "content-length", "content-encoding", "transfer-encoding", "host", "connection", "user-agent"}
)
RESERVED_PREFIX = "x-omnistream-"
BACKOFF = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=8),
    timedelta(hours=8),
)
MAX_ATTEMPTS = len(BACKOFF) + 1
DISABLE_AFTER = timedelta(days=1)
TIMEOUT_SECONDS = 10.0
LEASE = timedelta(seconds=60)
BATCH = 100
AT_ONCE = 32
MAX_RESPONSE_BYTES = 4096
TOLERANCE_SECONDS = 300
GONE_REASON = "the receiver answered 410 Gone"
FAILING_REASON = "every delivery attempt failed for a day"


def sign(secret: str, body: bytes, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: str, body: bytes, header: str, *, now: float, tolerance: int = TOLERANCE_SECONDS) -> bool:
    """What a receiver does: the signature is the secret's, and it was made within `tolerance`
    seconds of `now` (so a replayed request is refused)."""
    parts = [part.partition("=") for part in header.split(",")]
    stamps = [value for key, _, value in parts if key == "t"]
    if len(stamps) != 1 or not stamps[0].isdigit():
        return False
    timestamp = int(stamps[0])
    if abs(now - timestamp) > tolerance:
        return False
    expected = sign(secret, body, timestamp).rpartition("v1=")[2]
    return any(key == "v1" and hmac.compare_digest(value, expected) for key, _, value in parts)


def envelope(event_id: UUID, event_type: str, created_at: datetime, tenant_id: UUID, data: Any, *, test: bool) -> str:
    """The body of a delivery, fixed once so that every attempt sends the same bytes."""
    return msgspec.json.encode(
        {
            "id": event_id,
            "type": event_type,
            "created_at": created_at,
            "tenant_id": tenant_id,
            "test": test,
            "data": data,
        }
    ).decode()


@dataclass
class Outcome:
    succeeded: bool
    status_code: int | None
    error: str | None
    duration_ms: int
    request_headers: dict[str, str]
    response_body: str | None

    @property
    def gone(self) -> bool:
        return self.status_code == 410


async def post(
    client: httpx.AsyncClient,
    url: str,
    body: str,
    *,
    secret: str,
    headers: dict[str, str],
    event_type: str,
    delivery_id: UUID,
    now: datetime,
    allow_private: bool,
) -> Outcome:
    """One attempt; never raises for what the receiver (or the way to it) does."""
    sent = {
        **headers,
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_HEADER: event_type,
        DELIVERY_HEADER: str(delivery_id),
        SIGNATURE_HEADER: sign(secret, body.encode(), int(now.timestamp())),
    }
    shown = {name: HIDDEN if name in headers else value for name, value in sent.items()}
    started = time.perf_counter()
    status_code, error, answer = None, None, None
    try:
        await check_target(url, allow_private=allow_private)
        async with client.stream("POST", url, content=body.encode(), headers=sent, timeout=TIMEOUT_SECONDS) as response:
            status_code = response.status_code
            answer = await _start_of(response)
    except Refused as refused:
        error = f"refused: {refused}"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return Outcome(
        succeeded=status_code is not None and 200 <= status_code < 300,
        status_code=status_code,
        error=error,
        duration_ms=round((time.perf_counter() - started) * 1000),
        request_headers=shown,
        response_body=answer,
    )


async def _start_of(response: httpx.Response) -> str:
    """The first MAX_RESPONSE_BYTES of the answer: a receiver's large page is not kept whole."""
    taken = bytearray()
    async for chunk in response.aiter_raw():
        taken += chunk
        if len(taken) >= MAX_RESPONSE_BYTES:
            break
    return bytes(taken[:MAX_RESPONSE_BYTES]).decode("utf-8", errors="replace")


def backoff(attempt: int) -> timedelta | None:
    """The wait after failed attempt number `attempt`; None after the last."""
    return BACKOFF[attempt - 1] if attempt < MAX_ATTEMPTS else None


async def deliver_due(
    db: Database, secrets: SecretBox, client: httpx.AsyncClient, now: datetime, *, allow_private: bool
) -> int:
    """Claim one batch of due deliveries, post them side by side, then record the outcomes, one
    transaction per tenant; how many were claimed."""
    async with db.anonymous() as conn:
        claimed = await repository.claim_due(conn, now, BATCH, LEASE)
    gate = asyncio.Semaphore(AT_ONCE)

    async def one(row: asyncpg.Record) -> tuple[asyncpg.Record, Outcome]:
        async with gate:
            try:
                secret = secrets.open(row["secret_sealed"])
                headers = msgspec.json.decode(secrets.open(row["headers_sealed"])) if row["headers_sealed"] else {}
            except ValueError as exc:  # sealed with a key no longer configured: a failure to see in the log
                return row, Outcome(False, None, str(exc), 0, {}, None)
            return row, await post(
                client,
                row["url"],
                row["body"],
                secret=secret,
                headers=headers,
                event_type=row["event_type"],
                delivery_id=row["id"],
                now=now,
                allow_private=allow_private,
            )

    by_tenant: dict[UUID, list[tuple[asyncpg.Record, Outcome]]] = defaultdict(list)
    for row, outcome in await asyncio.gather(*(one(row) for row in claimed)):
        by_tenant[row["tenant_id"]].append((row, outcome))
    for tenant_id, posted in by_tenant.items():
        try:
            await _record(db, tenant_id, posted, now)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # Their leases run out and other attempts follow: nothing is lost.
            log.warning("webhook deliveries not recorded", tenant_id=str(tenant_id), error=str(exc))
    return len(claimed)


async def _record(db: Database, tenant_id: UUID, posted: list[tuple[asyncpg.Record, Outcome]], now: datetime) -> None:
    """Each attempt in the log and its delivery's new state, then each endpoint's health."""
    attempts = []
    for row, outcome in posted:
        wait = None if outcome.succeeded or outcome.gone else backoff(row["attempts"])
        status = "delivered" if outcome.succeeded else "pending" if wait else "failed"
        attempts.append((row, outcome, status, now + wait if wait else None))
    async with db.tenant(tenant_id) as conn:
        await repository.record_attempts(
            conn,
            tenant_id,
            now,
            delivery_ids=[row["id"] for row, *_ in attempts],
            attempts=[row["attempts"] for row, *_ in attempts],
            statuses=[status for _, _, status, _ in attempts],
            next_attempt_ats=[at for *_, at in attempts],
            succeeded=[outcome.succeeded for _, outcome, *_ in attempts],
            status_codes=[outcome.status_code for _, outcome, *_ in attempts],
            errors=[outcome.error for _, outcome, *_ in attempts],
            durations=[outcome.duration_ms for _, outcome, *_ in attempts],
            request_headers=[msgspec.json.encode(outcome.request_headers).decode() for _, outcome, *_ in attempts],
            response_bodies=[outcome.response_body for _, outcome, *_ in attempts],
        )
        by_endpoint: dict[UUID, list[Outcome]] = defaultdict(list)
        for row, outcome in posted:
            by_endpoint[row["webhook_id"]].append(outcome)
        for webhook_id, outcomes in by_endpoint.items():
            await _record_endpoint_health(conn, tenant_id, webhook_id, outcomes, now)


async def _record_endpoint_health(
    conn: asyncpg.Connection, tenant_id: UUID, webhook_id: UUID, outcomes: list[Outcome], now: datetime
) -> None:
    """One batch's outcomes for one endpoint: the failures since its last success count against it;
    a 410 among them disables it."""
    last_success = max((i for i, o in enumerate(outcomes) if o.succeeded), default=-1)
    failures = outcomes[last_success + 1 :]
    if last_success >= 0:
        await repository.endpoint_succeeded(conn, tenant_id, webhook_id, now)
    if not failures:
        return
    gone = any(o.gone for o in failures)
    still_enabled = await repository.endpoint_failed(
        conn,
        tenant_id,
        webhook_id,
        now,
        failures=len(failures),
        gone=gone,
        disable_after=DISABLE_AFTER,
        gone_reason=GONE_REASON,
        failing_reason=FAILING_REASON,
    )
    if still_enabled is False:
        log.warning("outgoing webhook disabled", webhook_id=str(webhook_id), gone=gone)
