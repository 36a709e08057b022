from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

import asyncpg

from omnistream.db import load_queries
from omnistream.kit.pagination import ListParams
from omnistream.kit.records import many, one
from omnistream.messages.schemas import ChatMessage, MessageSearchHit

queries = load_queries("messages")


async def get(conn: asyncpg.Connection, tenant_id: UUID, message_id: UUID) -> ChatMessage | None:
    return one(await queries.get_message(conn, tenant_id=tenant_id, id=message_id), ChatMessage)


async def list_page(
    conn: asyncpg.Connection, tenant_id: UUID, conversation_id: UUID, params: ListParams
) -> tuple[list[ChatMessage], int]:
    rows = await queries.list_messages(conn, tenant_id=tenant_id, conversation_id=conversation_id, **params.sql_args())
    total = await queries.count_messages(conn, tenant_id=tenant_id, conversation_id=conversation_id)
    return many(rows, ChatMessage), total


async def find_by_provider_id(
    conn: asyncpg.Connection, tenant_id: UUID, channel: str, provider_message_id: str
) -> asyncpg.Record | None:
    return await queries.find_by_provider_id(
        conn, tenant_id=tenant_id, channel=channel, provider_message_id=provider_message_id
    )


async def ingest_inbound(conn: asyncpg.Connection, tenant_id: UUID, **columns: list[Any]) -> list[asyncpg.Record]:
    """One row per message (`item`, from 1, is its place in the columns)."""
    return await queries.ingest_inbound(conn, tenant_id=tenant_id, **columns)


async def insert_outbound(conn: asyncpg.Connection, tenant_id: UUID, **values: Any) -> UUID:
    return await queries.insert_outbound(conn, tenant_id=tenant_id, **values)


async def claim_for_delivery(
    conn: asyncpg.Connection, tenant_id: UUID, message_id: UUID, lease: timedelta
) -> asyncpg.Record | None:
    """The message with a lease taken on it (commit before sending), or None when it is not queued
    or another job holds a lease on it."""
    return await queries.claim_for_delivery(
        conn, tenant_id=tenant_id, id=message_id, lease_seconds=lease.total_seconds()
    )


async def mark_sent(conn: asyncpg.Connection, tenant_id: UUID, message_id: UUID, provider_message_id: str) -> bool:
    """Sent, with the receipts that came before the send's answer applied; False when the message
    was no longer queued."""
    await queries.lock_receipts(conn, tenant_id=tenant_id, provider_message_ids=[provider_message_id])
    channel = await queries.mark_sent(conn, tenant_id=tenant_id, id=message_id, provider_message_id=provider_message_id)
    if channel is None:
        return False
    early = await queries.take_early_statuses(
        conn, tenant_id=tenant_id, channel=channel, provider_message_id=provider_message_id
    )
    if early:
        # Applied as any receipt is (forward only), now that the message has the provider's id.
        await queries.apply_statuses(
            conn,
            tenant_id=tenant_id,
            channel=channel,
            provider_message_ids=[r["provider_message_id"] for r in early],
            statuses=[r["status"] for r in early],
            occurred_at=[r["occurred_at"] for r in early],
            error_codes=[r["error_code"] for r in early],
            error_messages=[r["error_message"] for r in early],
        )
    return True


async def mark_failed(conn: asyncpg.Connection, tenant_id: UUID, message_id: UUID, code: str, message: str) -> None:
    await queries.mark_failed(conn, tenant_id=tenant_id, id=message_id, error_code=code, error_message=message)


async def release_lease(conn: asyncpg.Connection, tenant_id: UUID, message_id: UUID, code: str, message: str) -> None:
    await queries.release_lease(conn, tenant_id=tenant_id, id=message_id, error_code=code, error_message=message)


async def queued_due(conn: asyncpg.Connection, older_than: timedelta, limit: int) -> list[asyncpg.Record]:
    return await queries.queued_messages_due(conn, older_than=older_than, limit=limit)


async def search(
    conn: asyncpg.Connection, tenant_id: UUID, params: ListParams, filters: dict[str, Any]
) -> tuple[list[MessageSearchHit], int]:
    args = params.sql_args()
    rows = await queries.search_messages(
        conn, tenant_id=tenant_id, **filters, limit=params.per_page, offset=args["offset"]
    )
    total = await queries.count_search(conn, tenant_id=tenant_id, **filters)
    return many(rows, MessageSearchHit), total


async def has_media(conn: Any, tenant_id: UUID, message_id: UUID) -> bool:
    return bool(await queries.has_media(conn, tenant_id=tenant_id, id=message_id))


async def attach_media(conn: asyncpg.Connection, tenant_id: UUID, message_id: UUID, media_id: UUID) -> None:
    await queries.attach_media(conn, tenant_id=tenant_id, id=message_id, media_id=media_id)


async def apply_statuses(
    conn: asyncpg.Connection, tenant_id: UUID, channel: str, columns: dict[str, list[Any]]
) -> asyncpg.Record:
    await queries.lock_receipts(conn, tenant_id=tenant_id, provider_message_ids=columns["provider_message_ids"])
    return await queries.apply_statuses(conn, tenant_id=tenant_id, channel=channel, **columns)


async def purge_early_statuses(conn: asyncpg.Connection, older_than: timedelta) -> int:
    return int(await queries.purge_early_statuses(conn, older_than=older_than))


async def email_thread_identity(conn: asyncpg.Connection, tenant_id: UUID, message_ids: list[str]) -> str | None:
    return await queries.email_thread_identity(conn, tenant_id=tenant_id, message_ids=message_ids)


async def insert_outbound_many(
    conn: asyncpg.Connection, tenant_id: UUID, channel: str, columns: dict[str, list[Any]]
) -> dict[UUID, UUID]:
    """The new message of each conversation, by conversation id."""
    rows = await queries.insert_outbound_many(conn, tenant_id=tenant_id, channel=channel, **columns)
    return {r["conversation_id"]: r["id"] for r in rows}


async def withdraw_queued(conn: asyncpg.Connection, tenant_id: UUID, ids: list[UUID], reason: str) -> list[UUID]:
    return [r["id"] for r in await queries.withdraw_queued(conn, tenant_id=tenant_id, ids=ids, reason=reason)]
