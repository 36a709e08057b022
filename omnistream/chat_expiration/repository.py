from __future__ import annotations

from uuid import UUID

import asyncpg

from omnistream.chat_expiration.schemas import ChatExpirationRule
from omnistream.db import load_queries
from omnistream.kit.records import many, one

queries = load_queries("chat_expiration")


async def list_rules(conn: asyncpg.Connection, tenant_id: UUID) -> list[ChatExpirationRule]:
    return many(await queries.list_rules(conn, tenant_id=tenant_id), ChatExpirationRule)


async def list_enabled(conn: asyncpg.Connection, tenant_id: UUID) -> list[ChatExpirationRule]:
    return many(await queries.list_enabled_rules(conn, tenant_id=tenant_id), ChatExpirationRule)


async def upsert(
    conn: asyncpg.Connection,
    tenant_id: UUID,
    channel: str,
    *,
    enabled: bool,
    inactivity_minutes: int,
    statuses: list[str],
    updated_by: UUID,
) -> ChatExpirationRule:
    rule = one(
        await queries.upsert_rule(
            conn,
            tenant_id=tenant_id,
            channel=channel,
            enabled=enabled,
            inactivity_minutes=inactivity_minutes,
            statuses=statuses,
            updated_by=updated_by,
        ),
        ChatExpirationRule,
    )
    assert rule is not None
    return rule


async def tenants_with_enabled_rules(conn: asyncpg.Connection) -> list[UUID]:
    return [r["tenant_id"] for r in await queries.tenants_with_enabled_rules(conn)]
