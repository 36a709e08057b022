from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

from omnistream.api_keys.schemas import ApiKey
from omnistream.db import load_queries
from omnistream.kit.records import many

queries = load_queries("api_keys")


async def list_for_user(
    conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID, include_revoked: bool
) -> list[ApiKey]:
    rows = await queries.list_api_keys(conn, tenant_id=tenant_id, user_id=user_id, include_revoked=include_revoked)
    return many(rows, ApiKey)


async def insert(
    conn: asyncpg.Connection,
    tenant_id: UUID,
    user_id: UUID,
    *,
    name: str,
    prefix: str,
    key_hash: str,
    scopes: list[str] | None,
    expires_at: datetime | None,
) -> ApiKey:
    row = await queries.insert_api_key(
        conn,
        tenant_id=tenant_id,
        user_id=user_id,
        name=name,
        prefix=prefix,
        key_hash=key_hash,
        scopes=scopes,
        expires_at=expires_at,
    )
    return ApiKey(**row)


async def revoke(conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID, key_id: UUID) -> bool:
    return await queries.revoke_api_key(conn, tenant_id=tenant_id, user_id=user_id, id=key_id) is not None


async def revoke_all_for_user(conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID) -> None:
    await queries.revoke_user_api_keys(conn, tenant_id=tenant_id, user_id=user_id)
