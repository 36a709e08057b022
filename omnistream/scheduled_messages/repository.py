from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from omnistream.db import load_queries
from omnistream.kit.pagination import ListParams
from omnistream.scheduled_messages.schemas import ScheduledMessage

queries = load_queries("scheduled_messages")


def _scheduled(row: Any) -> ScheduledMessage:
    fields = dict(row)
    fields["message"] = fields.pop("body")
    return ScheduledMessage(**fields)


async def insert(
    conn: asyncpg.Connection,
    tenant_id: UUID,
    conversation_id: UUID,
    body: dict[str, Any],
    send_at: datetime,
    created_by: UUID | None,
) -> UUID:
    return await queries.insert_scheduled_message(
        conn, tenant_id=tenant_id, conversation_id=conversation_id, body=body, send_at=send_at, created_by=created_by
    )


async def get(conn: asyncpg.Connection, tenant_id: UUID, scheduled_id: UUID) -> ScheduledMessage | None:
    row = await queries.get_scheduled_message(conn, tenant_id=tenant_id, id=scheduled_id)
    return None if row is None else _scheduled(row)


async def list_page(
    conn: asyncpg.Connection, tenant_id: UUID, conversation_id: UUID, params: ListParams, status: str | None
) -> tuple[list[ScheduledMessage], int]:
    filters = {"conversation_id": conversation_id, "status": status}
    rows = await queries.list_scheduled_messages(conn, tenant_id=tenant_id, **filters, **params.sql_args())
    total = await queries.count_scheduled_messages(conn, tenant_id=tenant_id, **filters)
    return [_scheduled(row) for row in rows], total


async def lock(conn: asyncpg.Connection, tenant_id: UUID, scheduled_id: UUID) -> asyncpg.Record | None:
    return await queries.lock_scheduled_message(conn, tenant_id=tenant_id, id=scheduled_id)


async def cancel(
    conn: asyncpg.Connection, tenant_id: UUID, scheduled_id: UUID, user_id: UUID | None, now: datetime
) -> None:
    await queries.cancel_scheduled_message(conn, tenant_id=tenant_id, id=scheduled_id, user_id=user_id, now=now)


async def tenants_with_due(conn: asyncpg.Connection, now: datetime) -> list[UUID]:
    return [r["tenant_id"] for r in await queries.tenants_with_due(conn, now=now)]


async def claim_due(conn: asyncpg.Connection, tenant_id: UUID, now: datetime) -> asyncpg.Record | None:
    return await queries.claim_due(conn, tenant_id=tenant_id, now=now)


async def mark_sent(
    conn: asyncpg.Connection, tenant_id: UUID, scheduled_id: UUID, message_id: UUID, now: datetime
) -> None:
    await queries.mark_sent(conn, tenant_id=tenant_id, id=scheduled_id, message_id=message_id, now=now)


async def mark_failed(
    conn: asyncpg.Connection, tenant_id: UUID, scheduled_id: UUID, reason: str, now: datetime
) -> None:
    await queries.mark_failed(conn, tenant_id=tenant_id, id=scheduled_id, reason=reason, now=now)
