from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

from omnistream.db import load_queries

queries = load_queries("auth")


async def login_candidates(conn: asyncpg.Connection, email: str) -> list[asyncpg.Record]:
    return await queries.login_candidates(conn, email=email)


async def session_principal(conn: asyncpg.Connection, tenant_id: UUID, session_id: UUID) -> asyncpg.Record | None:
    return await queries.session_principal(conn, tenant_id=tenant_id, session_id=session_id)


async def api_key_principal(
    conn: asyncpg.Connection, tenant_id: UUID, prefix: str, key_hash: str
) -> asyncpg.Record | None:
    return await queries.api_key_principal(conn, tenant_id=tenant_id, prefix=prefix, key_hash=key_hash)


async def insert_session(
    conn: asyncpg.Connection,
    *,
    session_id: UUID,
    tenant_id: UUID,
    user_id: UUID,
    ip: str | None,
    user_agent: str | None,
    expires_at: datetime,
) -> None:
    await queries.insert_session(
        conn, id=session_id, tenant_id=tenant_id, user_id=user_id, ip=ip, user_agent=user_agent, expires_at=expires_at
    )


async def extend_session(conn: asyncpg.Connection, tenant_id: UUID, session_id: UUID, expires_at: datetime) -> bool:
    return await queries.extend_session(conn, tenant_id=tenant_id, id=session_id, expires_at=expires_at) is not None


async def revoke_session(conn: asyncpg.Connection, tenant_id: UUID, session_id: UUID) -> None:
    await queries.revoke_session(conn, tenant_id=tenant_id, id=session_id)


async def revoke_user_sessions(conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID) -> None:
    await queries.revoke_user_sessions(conn, tenant_id=tenant_id, user_id=user_id)


async def purge_ended_sessions(conn: asyncpg.Connection) -> int:
    return await queries.purge_ended_sessions(conn)
