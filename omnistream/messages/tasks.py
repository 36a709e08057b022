"""Delivery of outbound messages through their channel's adapter, and the sweeper for lost jobs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

import structlog
from arq import Retry

from omnistream.channels import DeliveryError, OutboundMessage, adapter_for
from omnistream.messages import repository
from omnistream.messages.service import enqueue_delivery

log = structlog.get_logger(__name__)

MAX_ATTEMPTS = 6


async def deliver_message(ctx: dict[str, Any], tenant_id: str, message_id: str) -> str:
    db = ctx["db"]
    tenant, message = UUID(tenant_id), UUID(message_id)
    async with db.tenant(tenant) as conn:
        row = await repository.claim_for_delivery(conn, tenant, message)
        if row is None:
            return "not queued"
        adapter = adapter_for(row["channel"])
        if adapter is None:
            await repository.mark_failed(
                conn,
                tenant,
                message,
                "channel_not_connected",
                f"no {row['channel']} integration is connected to send this message",
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
    )
    try:
        result = await adapter.send(outbound)
    except DeliveryError as exc:
        attempt = ctx.get("job_try", 1)
        if exc.retryable and attempt < MAX_ATTEMPTS:
            raise Retry(defer=2**attempt) from exc
        async with db.tenant(tenant) as conn:
            await repository.mark_failed(conn, tenant, message, exc.code, exc.message)
        return "failed"
    async with db.tenant(tenant) as conn:
        await repository.mark_sent(conn, tenant, message, result.provider_message_id)
    return "sent"


async def sweep_queued_messages(ctx: dict[str, Any]) -> int:
    """Enqueue again the messages still queued a minute after they were written."""
    async with ctx["db"].anonymous() as conn:
        due = await repository.queued_due(conn, timedelta(minutes=1), 1000)
    for row in due:
        await enqueue_delivery(ctx["redis"], row["tenant_id"], row["message_id"])
    if due:
        log.info("queued messages re-enqueued", count=len(due))
    return len(due)
