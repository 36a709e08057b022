from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from omnistream.conversations.schemas import ContactSummary, Conversation
from omnistream.db import load_queries
from omnistream.kit.pagination import ListParams
from omnistream.kit.records import one

queries = load_queries("conversations")


async def get(
    conn: asyncpg.Connection, tenant_id: UUID, conversation_id: UUID, visibility: dict[str, Any]
) -> Conversation | None:
    row = await queries.get_conversation(conn, tenant_id=tenant_id, id=conversation_id, **visibility)
    return one(row, Conversation)


async def list_page(
    conn: asyncpg.Connection, tenant_id: UUID, params: ListParams, sort_by: str, filters: dict[str, Any]
) -> list[Conversation]:
    order = f"{'activity' if sort_by == 'last_activity_at' else 'created'}_{'desc' if params.descending else 'asc'}"
    rows = await queries.list_conversations(
        conn, tenant_id=tenant_id, **filters, **params.sql_args(), **{order: True, f"after_{order}": params.cursor}
    )
    # Built positionally, not converted: the hot list path. The columns come in the Struct's
    # field order, the contact last (tests/test_query_shapes.py holds them to it).
    return [Conversation(*row[:-1], ContactSummary(**row[-1])) for row in rows]


async def count(conn: asyncpg.Connection, tenant_id: UUID, filters: dict[str, Any]) -> int:
    return await queries.count_conversations(conn, tenant_id=tenant_id, **filters)


async def lock(conn: asyncpg.Connection, tenant_id: UUID, conversation_id: UUID) -> asyncpg.Record | None:
    return await queries.lock_conversation(conn, tenant_id=tenant_id, id=conversation_id)


async def set_assignment(
    conn: asyncpg.Connection, tenant_id: UUID, conversation_id: UUID, agent_id: UUID | None, division_id: UUID | None
) -> None:
    await queries.set_assignment(
        conn, tenant_id=tenant_id, id=conversation_id, assigned_agent_id=agent_id, division_id=division_id
    )


async def set_status(
    conn: asyncpg.Connection, tenant_id: UUID, conversation_id: UUID, status: str, changed_by: UUID | None
) -> None:
    await queries.set_status(conn, tenant_id=tenant_id, id=conversation_id, status=status, changed_by=changed_by)


async def set_tags(conn: asyncpg.Connection, tenant_id: UUID, conversation_id: UUID, tags: list[str]) -> None:
    await queries.set_tags(conn, tenant_id=tenant_id, id=conversation_id, tags=tags)


async def take_over(conn: asyncpg.Connection, tenant_id: UUID, conversation_id: UUID, agent_id: UUID) -> None:
    await queries.take_over(conn, tenant_id=tenant_id, id=conversation_id, agent_id=agent_id)


async def mark_read(conn: asyncpg.Connection, tenant_id: UUID, conversation_id: UUID, user_id: UUID) -> None:
    await queries.mark_read(conn, tenant_id=tenant_id, id=conversation_id, user_id=user_id)


async def record_outbound(
    conn: asyncpg.Connection, tenant_id: UUID, conversation_id: UUID, at: datetime, preview: str
) -> None:
    await queries.record_outbound(conn, tenant_id=tenant_id, id=conversation_id, at=at, preview=preview)


async def expire_stale(
    conn: asyncpg.Connection,
    tenant_id: UUID,
    *,
    channel: str,
    statuses: list[str],
    idle_before: datetime,
    changed_by: UUID | None,
    limit: int,
) -> list[asyncpg.Record]:
    return await queries.expire_stale(
        conn,
        tenant_id=tenant_id,
        channel=channel,
        statuses=statuses,
        idle_before=idle_before,
        changed_by=changed_by,
        limit=limit,
    )


async def event_snapshot(conn: asyncpg.Connection, tenant_id: UUID, conversation_id: UUID) -> asyncpg.Record:
    return await queries.event_snapshot(conn, tenant_id=tenant_id, id=conversation_id)


async def set_priority(conn: asyncpg.Connection, tenant_id: UUID, conversation_id: UUID, priority: str) -> None:
    await queries.set_priority(conn, tenant_id=tenant_id, id=conversation_id, priority=priority)


async def online_agents_by_load(conn: asyncpg.Connection, tenant_id: UUID, division_id: UUID) -> list[tuple[UUID, int]]:
    await queries.lock_division_assignments(conn, tenant_id=tenant_id, division_id=division_id)
    rows = await queries.online_agents_by_load(conn, tenant_id=tenant_id, division_id=division_id)
    return [(row["id"], row["load"]) for row in rows]


async def open_threads(
    conn: asyncpg.Connection, tenant_id: UUID, channel: str, account_id: UUID, contact_ids: list[UUID], now: datetime
) -> list[asyncpg.Record]:
    await queries.open_threads(
        conn, tenant_id=tenant_id, channel=channel, account_id=account_id, contact_ids=contact_ids, now=now
    )
    return list(
        await queries.lock_threads(
            conn, tenant_id=tenant_id, channel=channel, account_id=account_id, contact_ids=contact_ids
        )
    )


async def record_outbound_many(
    conn: asyncpg.Connection, tenant_id: UUID, at: datetime, previews: dict[UUID, str]
) -> None:
    await queries.record_outbound_many(
        conn, tenant_id=tenant_id, at=at, ids=list(previews), previews=list(previews.values())
    )
