"""Outgoing webhooks: endpoints, deliveries and the attempts log."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from omnistream.db import load_queries
from omnistream.kit.pagination import ListParams
from omnistream.kit.records import many, one
from omnistream.outgoing_webhooks.schemas import HIDDEN, OutgoingWebhook, WebhookDelivery

queries = load_queries("outgoing_webhooks")


def _webhook(row: asyncpg.Record) -> OutgoingWebhook:
    fields = dict(row)
    fields["headers"] = dict.fromkeys(fields.pop("header_names"), HIDDEN)
    return one(fields, OutgoingWebhook)  # type: ignore[return-value]


async def list_page(
    conn: asyncpg.Connection, tenant_id: UUID, params: ListParams, *, enabled: bool | None, event_type: str | None
) -> tuple[list[OutgoingWebhook], int]:
    filters: dict[str, Any] = {"enabled": enabled, "event_type": event_type}
    rows = await queries.list_webhooks(conn, tenant_id=tenant_id, **filters, **params.sql_args())
    total = await queries.count_webhooks(conn, tenant_id=tenant_id, **filters)
    return [_webhook(r) for r in rows], total


async def get(conn: asyncpg.Connection, tenant_id: UUID, webhook_id: UUID) -> OutgoingWebhook | None:
    row = await queries.get_webhook(conn, tenant_id=tenant_id, id=webhook_id)
    return None if row is None else _webhook(row)


async def lock(conn: asyncpg.Connection, tenant_id: UUID, webhook_id: UUID) -> asyncpg.Record | None:
    return await queries.lock_webhook(conn, tenant_id=tenant_id, id=webhook_id)


async def sending_details(conn: asyncpg.Connection, tenant_id: UUID, webhook_id: UUID) -> asyncpg.Record | None:
    return await queries.sending_details(conn, tenant_id=tenant_id, id=webhook_id)


async def insert(conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID | None, **fields: Any) -> UUID:
    return await queries.insert_webhook(conn, tenant_id=tenant_id, user_id=user_id, **fields)


async def update(conn: asyncpg.Connection, tenant_id: UUID, webhook_id: UUID, **fields: Any) -> None:
    await queries.update_webhook(conn, tenant_id=tenant_id, id=webhook_id, **fields)


async def delete(conn: asyncpg.Connection, tenant_id: UUID, webhook_id: UUID) -> asyncpg.Record | None:
    return await queries.delete_webhook(conn, tenant_id=tenant_id, id=webhook_id)


async def fan_out(
    conn: asyncpg.Connection,
    tenant_id: UUID,
    event_ids: list[UUID],
    event_types: list[str],
    bodies: list[str],
    created_ats: list[datetime],
) -> int:
    rows = await queries.fan_out(
        conn,
        tenant_id=tenant_id,
        event_ids=event_ids,
        event_types=event_types,
        bodies=bodies,
        created_ats=created_ats,
    )
    return len(rows)


async def claim_due(conn: asyncpg.Connection, now: datetime, limit: int, lease: timedelta) -> list[asyncpg.Record]:
    return list(await queries.claim_due(conn, now=now, limit=limit, lease=lease))


async def record_attempts(conn: asyncpg.Connection, tenant_id: UUID, now: datetime, **columns: list[Any]) -> None:
    await queries.record_attempts(conn, tenant_id=tenant_id, now=now, **columns)


async def record_test_attempt(conn: asyncpg.Connection, tenant_id: UUID, **fields: Any) -> None:
    await queries.record_test_attempt(conn, tenant_id=tenant_id, **fields)


async def endpoint_succeeded(conn: asyncpg.Connection, tenant_id: UUID, webhook_id: UUID, now: datetime) -> None:
    await queries.endpoint_succeeded(conn, tenant_id=tenant_id, id=webhook_id, now=now)


async def endpoint_failed(
    conn: asyncpg.Connection, tenant_id: UUID, webhook_id: UUID, now: datetime, **fields: Any
) -> bool | None:
    """Whether the endpoint is still enabled after the failure (None: it is gone)."""
    row = await queries.endpoint_failed(conn, tenant_id=tenant_id, id=webhook_id, now=now, **fields)
    return None if row is None else row["enabled"]


async def attempts_page(
    conn: asyncpg.Connection, tenant_id: UUID, webhook_id: UUID, params: ListParams, **filters: Any
) -> tuple[list[WebhookDelivery], int]:
    rows = await queries.list_attempts(conn, tenant_id=tenant_id, webhook_id=webhook_id, **filters, **params.sql_args())
    total = await queries.count_attempts(conn, tenant_id=tenant_id, webhook_id=webhook_id, **filters)
    return many(rows, WebhookDelivery), total


async def get_attempt(conn: asyncpg.Connection, tenant_id: UUID, attempt_id: UUID) -> WebhookDelivery | None:
    return one(await queries.get_attempt(conn, tenant_id=tenant_id, id=attempt_id), WebhookDelivery)


async def purge_log(conn: asyncpg.Connection, before: datetime, limit: int) -> int:
    return await queries.purge_log(conn, before=before, limit=limit)
