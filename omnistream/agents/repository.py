from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from omnistream.agents.schemas import Agent
from omnistream.db import load_queries
from omnistream.kit.pagination import ListParams
from omnistream.kit.records import many, one

queries = load_queries("agents")


async def get(conn: asyncpg.Connection, tenant_id: UUID, agent_id: UUID) -> Agent | None:
    return one(await queries.get_agent(conn, tenant_id=tenant_id, id=agent_id), Agent)


async def list_page(
    conn: asyncpg.Connection, tenant_id: UUID, params: ListParams, filters: dict[str, Any]
) -> tuple[list[Agent], int]:
    rows = await queries.list_agents(conn, tenant_id=tenant_id, **filters, **params.sql_args())
    total = await queries.count_agents(conn, tenant_id=tenant_id, **filters)
    return many(rows, Agent), total


async def email_taken(conn: asyncpg.Connection, tenant_id: UUID, email: str, except_id: UUID | None) -> bool:
    return bool(await queries.email_taken(conn, tenant_id=tenant_id, email=email, except_id=except_id))


async def insert(
    conn: asyncpg.Connection, tenant_id: UUID, *, email: str, name: str, password_hash: str, role_id: UUID
) -> UUID:
    return await queries.insert_agent(
        conn, tenant_id=tenant_id, email=email, name=name, password_hash=password_hash, role_id=role_id
    )


async def update(conn: asyncpg.Connection, tenant_id: UUID, agent_id: UUID, **values: Any) -> bool:
    fields = {"name": None, "email": None, "role_id": None, "status": None, "password_hash": None} | values
    return await queries.update_agent(conn, tenant_id=tenant_id, id=agent_id, **fields) is not None


async def set_online_status(conn: asyncpg.Connection, tenant_id: UUID, agent_id: UUID, status: str) -> bool:
    return await queries.set_online_status(conn, tenant_id=tenant_id, id=agent_id, online_status=status) is not None


async def touch_last_seen(conn: asyncpg.Connection, tenant_id: UUID, agent_id: UUID) -> None:
    await queries.touch_last_seen(conn, tenant_id=tenant_id, id=agent_id)


async def soft_delete(conn: asyncpg.Connection, tenant_id: UUID, agent_id: UUID) -> bool:
    return await queries.soft_delete_agent(conn, tenant_id=tenant_id, id=agent_id) is not None


async def lock_active_admins(conn: asyncpg.Connection, tenant_id: UUID) -> set[UUID]:
    return {r["id"] for r in await queries.lock_active_admins(conn, tenant_id=tenant_id)}


async def lock_active_ids(conn: asyncpg.Connection, tenant_id: UUID, agent_ids: list[UUID]) -> set[UUID]:
    return {r["id"] for r in await queries.lock_active_agent_ids(conn, tenant_id=tenant_id, ids=agent_ids)}
