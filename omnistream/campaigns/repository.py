from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from omnistream.campaigns.schemas import CampaignProgress, Recipient
from omnistream.db import load_queries
from omnistream.kit.pagination import ListParams
from omnistream.kit.records import many, one

queries = load_queries("campaigns")
NO_MESSAGE = UUID(int=0)


async def list_page(
    conn: asyncpg.Connection, tenant_id: UUID, params: ListParams, filters: dict[str, Any]
) -> tuple[list[asyncpg.Record], int]:
    rows = await queries.list_campaigns(conn, tenant_id=tenant_id, **filters, **params.sql_args())
    total = await queries.count_campaigns(conn, tenant_id=tenant_id, **filters)
    return list(rows), total


async def get(conn: asyncpg.Connection, tenant_id: UUID, campaign_id: UUID) -> asyncpg.Record | None:
    return await queries.get_campaign(conn, tenant_id=tenant_id, id=campaign_id)


async def lock(conn: asyncpg.Connection, tenant_id: UUID, campaign_id: UUID) -> asyncpg.Record | None:
    return await queries.lock_campaign(conn, tenant_id=tenant_id, id=campaign_id)


async def lock_for_batch(conn: asyncpg.Connection, tenant_id: UUID, campaign_id: UUID) -> asyncpg.Record | None:
    return await queries.lock_campaign_for_batch(conn, tenant_id=tenant_id, id=campaign_id)


async def progress(conn: asyncpg.Connection, tenant_id: UUID, campaign_id: UUID) -> CampaignProgress:
    counts = one(await queries.progress(conn, tenant_id=tenant_id, campaign_id=campaign_id), CampaignProgress)
    assert counts is not None
    return counts


async def insert(conn: asyncpg.Connection, tenant_id: UUID, **fields: Any) -> UUID:
    return await queries.insert_campaign(conn, tenant_id=tenant_id, **fields)


async def update(conn: asyncpg.Connection, tenant_id: UUID, campaign_id: UUID, **fields: Any) -> None:
    await queries.update_campaign(conn, tenant_id=tenant_id, id=campaign_id, **fields)


async def delete(conn: asyncpg.Connection, tenant_id: UUID, campaign_id: UUID) -> None:
    await queries.delete_campaign(conn, tenant_id=tenant_id, id=campaign_id)


async def schedule(
    conn: asyncpg.Connection, tenant_id: UUID, campaign_id: UUID, status: str, send_at: datetime
) -> None:
    await queries.schedule_campaign(conn, tenant_id=tenant_id, id=campaign_id, status=status, send_at=send_at)


async def mark_sending(conn: asyncpg.Connection, tenant_id: UUID, campaign_id: UUID, now: datetime) -> None:
    await queries.mark_sending(conn, tenant_id=tenant_id, id=campaign_id, now=now)


async def finish_if_done(conn: asyncpg.Connection, tenant_id: UUID, campaign_id: UUID, now: datetime) -> None:
    await queries.finish_if_done(conn, tenant_id=tenant_id, id=campaign_id, now=now)


async def cancel(conn: asyncpg.Connection, tenant_id: UUID, campaign_id: UUID, now: datetime) -> None:
    await queries.cancel_campaign(conn, tenant_id=tenant_id, id=campaign_id, now=now)


async def queued_message_ids(
    conn: asyncpg.Connection, tenant_id: UUID, campaign_id: UUID, after: UUID | None, batch: int
) -> list[UUID]:
    rows = await queries.queued_message_ids(
        conn, tenant_id=tenant_id, campaign_id=campaign_id, after=after or NO_MESSAGE, batch=batch
    )
    return [r["message_id"] for r in rows]


async def cancel_pending(conn: asyncpg.Connection, tenant_id: UUID, campaign_id: UUID, withdrawn: list[UUID]) -> int:
    return int(await queries.cancel_pending(conn, tenant_id=tenant_id, campaign_id=campaign_id, withdrawn=withdrawn))


async def list_recipients(
    conn: asyncpg.Connection, tenant_id: UUID, campaign_id: UUID, params: ListParams, status: str | None
) -> tuple[list[Recipient], int]:
    rows = await queries.list_recipients(
        conn, tenant_id=tenant_id, campaign_id=campaign_id, status=status, **params.sql_args()
    )
    total = await queries.count_recipients(conn, tenant_id=tenant_id, campaign_id=campaign_id, status=status)
    return many(rows, Recipient), total


async def add_recipients(
    conn: asyncpg.Connection,
    tenant_id: UUID,
    campaign_id: UUID,
    contact_ids: list[UUID],
    variables: list[dict[str, str]],
) -> set[UUID]:
    """The contacts added (those already recipients are not)."""
    rows = await queries.add_recipients(
        conn, tenant_id=tenant_id, campaign_id=campaign_id, contact_ids=contact_ids, variables=variables
    )
    return {r["contact_id"] for r in rows}


async def clear_recipients(conn: asyncpg.Connection, tenant_id: UUID, campaign_id: UUID) -> int:
    return int(await queries.clear_recipients(conn, tenant_id=tenant_id, campaign_id=campaign_id))


async def recipient_count(conn: asyncpg.Connection, tenant_id: UUID, campaign_id: UUID) -> int:
    return int(await queries.recipient_count(conn, tenant_id=tenant_id, campaign_id=campaign_id))


async def claim_pending(
    conn: asyncpg.Connection, tenant_id: UUID, campaign_id: UUID, batch: int
) -> list[asyncpg.Record]:
    return list(await queries.claim_pending(conn, tenant_id=tenant_id, campaign_id=campaign_id, batch=batch))


async def mark_queued(
    conn: asyncpg.Connection, tenant_id: UUID, queued: list[tuple[UUID, UUID, UUID]], now: datetime
) -> None:
    """(recipient id, message id, conversation id) of each recipient whose message was queued."""
    await queries.mark_queued(
        conn,
        tenant_id=tenant_id,
        now=now,
        ids=[q[0] for q in queued],
        message_ids=[q[1] for q in queued],
        conversation_ids=[q[2] for q in queued],
    )


async def mark_skipped(conn: asyncpg.Connection, tenant_id: UUID, ids: list[UUID], reason: str) -> None:
    await queries.mark_skipped(conn, tenant_id=tenant_id, ids=ids, reason=reason)


async def lock_pacing(conn: asyncpg.Connection, tenant_id: UUID, account_id: UUID, start: datetime) -> datetime | None:
    """Where the account's send budget stands, locked; None while another worker spends it."""
    await queries.ensure_pacing(conn, tenant_id=tenant_id, account_id=account_id, start=start)
    return await queries.lock_pacing(conn, tenant_id=tenant_id, account_id=account_id)


async def spend_pacing(conn: asyncpg.Connection, tenant_id: UUID, account_id: UUID, paced_until: datetime) -> None:
    await queries.spend_pacing(conn, tenant_id=tenant_id, account_id=account_id, paced_until=paced_until)


async def campaigns_due(conn: asyncpg.Connection, now: datetime, limit: int) -> list[asyncpg.Record]:
    return list(await queries.campaigns_due(conn, now=now, limit=limit))
