"""Delivery of outbound messages through their channel, and the sweeper for lost jobs.

A job takes a lease on the message (committed before the provider is called), so a message is sent
at most once per attempt however many jobs run for it; the lease outlasts the longest send, and a
worker killed mid-send leaves one that runs out for a later job. A send the provider refuses for
now (throttling, a server error, a timeout) is tried again with exponential backoff and full
jitter, or after the provider's Retry-After, up to MAX_ATTEMPTS; a refusal for good fails the
message with the provider's code and text.
"""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta
from typing import Any
from uuid import UUID

import structlog
from arq import Retry

from omnistream.channels import DeliveryError, OutboundMessage
from omnistream.channels import delivery as channels
from omnistream.config import Settings
from omnistream.integrations import service as integrations
from omnistream.messages import repository
from omnistream.messages.service import enqueue_delivery

log = structlog.get_logger(__name__)

MAX_ATTEMPTS = 6
BACKOFF_BASE_SECONDS = 5.0
BACKOFF_CAP_SECONDS = 15 * 60.0
LONGEST_RETRY_AFTER_SECONDS = 3600.0
LEASE_MARGIN = timedelta(seconds=30)


def lease_for(settings: Settings) -> timedelta:
    """Longer than a send may take (each send runs under that budget), so a live send is never
    taken over."""
    return timedelta(seconds=channels.send_budget(settings)) + LEASE_MARGIN


def backoff_seconds(attempt: int, retry_after: float | None = None) -> float:
    """The provider's Retry-After when it gave one; else full jitter over an exponential ceiling,
    so the messages a rate limit held back do not all come back at once."""
    if retry_after is not None and retry_after > 0:
        return min(retry_after, LONGEST_RETRY_AFTER_SECONDS)
    return random.uniform(1.0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt))  # noqa: S311 (jitter, not a secret)


async def deliver_message(ctx: dict[str, Any], tenant_id: str, message_id: str) -> str:
    db, settings = ctx["db"], ctx["settings"]
    tenant, message = UUID(tenant_id), UUID(message_id)
    async with db.tenant(tenant) as conn:
        row = await repository.claim_for_delivery(conn, tenant, message, lease_for(settings))
        if row is None:
            return "not queued"  # already sent or failed, or another job is sending it now
        account = await integrations.sending_account(conn, settings, tenant, row["channel"], row["account_id"])
        if account is None or not account.active:
            await repository.mark_failed(
                conn,
                tenant,
                message,
                "channel_not_connected",
                f"no {row['channel']} integration is connected to send this message",
            )
            return "failed"
        if row["send_attempts"] > MAX_ATTEMPTS:
            # Every attempt so far ended without an answer (a worker dying mid-send, each time).
            await repository.mark_failed(
                conn, tenant, message, "too_many_attempts", f"no send finished in {MAX_ATTEMPTS} attempts"
            )
            return "failed"
    outbound = OutboundMessage(
        tenant_id=tenant,
        message_id=message,
        conversation_id=row["conversation_id"],
        contact_id=row["contact_id"],
        account_id=row["account_id"],
        channel=row["channel"],
        type=row["type"],
        text=row["text"],
        content=row["content"],
        recipient=row["recipient"],
        answering=row["answering"],
    )
    attempt = max(ctx.get("job_try", 1), row["send_attempts"])
    try:
        async with asyncio.timeout(channels.send_budget(settings)):
            result = await channels.send(settings, account, outbound, ctx.get("graph_http"))
    except DeliveryError as exc:
        failure = exc
    except TimeoutError:
        failure = DeliveryError("timeout", "the provider did not answer in time", retryable=True)
    except Exception as exc:
        log.exception("delivery failed unexpectedly", message_id=message_id)
        failure = DeliveryError("delivery_error", f"{type(exc).__name__}: {exc}"[:500], retryable=True)
    else:
        async with db.tenant(tenant) as conn:
            await repository.mark_sent(conn, tenant, message, result.provider_message_id)
        return "sent"
    if failure.retryable and attempt < MAX_ATTEMPTS:
        async with db.tenant(tenant) as conn:
            await repository.release_lease(conn, tenant, message, failure.code, failure.message)
        delay = backoff_seconds(attempt, failure.retry_after)
        log.info("delivery to be tried again", message_id=message_id, code=failure.code, attempt=attempt, defer=delay)
        raise Retry(defer=delay)
    async with db.tenant(tenant) as conn:
        await repository.mark_failed(conn, tenant, message, failure.code, failure.message)
    log.info("delivery failed", message_id=message_id, code=failure.code, attempt=attempt)
    return "failed"


async def sweep_queued_messages(ctx: dict[str, Any]) -> int:
    """Enqueue again the messages still queued a minute after they were written."""
    async with ctx["db"].anonymous() as conn:
        due = await repository.queued_due(conn, timedelta(minutes=1), 1000)
    for row in due:
        await enqueue_delivery(ctx["redis"], row["tenant_id"], row["message_id"])
    if due:
        log.info("queued messages re-enqueued", count=len(due))
    return len(due)
