from __future__ import annotations

from uuid import UUID

import asyncpg

from omnistream.db import load_queries
from omnistream.divisions.schemas import Division, DivisionAgent
from omnistream.kit.pagination import ListParams
from omnistream.kit.records import many, one

queries = load_queries("divisions")


async def get(conn: asyncpg.Connection, tenant_id: UUID, division_id: UUID) -> Division | None:
    return one(await queries.get_division(conn, tenant_id=tenant_id, id=division_id), Division)


async def list_page(
    conn: asyncpg.Connection, tenant_id: UUID, params: ListParams, q: str | None
) -> tuple[list[Division], int]:
    rows = await queries.list_divisions(conn, tenant_id=tenant_id, q=q, **params.sql_args())
    total = await queries.count_divisions(conn, tenant_id=tenant_id, q=q)
    return many(rows, Division), total


async def name_taken(conn: asyncpg.Connection, tenant_id: UUID, name: str, except_id: UUID | None) -> bool:
    return bool(await queries.division_name_taken(conn, tenant_id=tenant_id, name=name, except_id=except_id))


async def insert(conn: asyncpg.Connection, tenant_id: UUID, *, name: str, description: str) -> UUID:
    return await queries.insert_division(conn, tenant_id=tenant_id, name=name, description=description)


async def update(
    conn: asyncpg.Connection, tenant_id: UUID, division_id: UUID, *, name: str | None, description: str | None
) -> bool:
    updated = await queries.update_division(
        conn, tenant_id=tenant_id, id=division_id, name=name, description=description
    )
    return updated is not None


async def lock(conn: asyncpg.Connection, tenant_id: UUID, division_id: UUID) -> asyncpg.Record | None:
    return await queries.lock_division(conn, tenant_id=tenant_id, id=division_id)


async def touch(conn: asyncpg.Connection, tenant_id: UUID, division_id: UUID) -> None:
    await queries.touch_division(conn, tenant_id=tenant_id, id=division_id)


async def delete(conn: asyncpg.Connection, tenant_id: UUID, division_id: UUID) -> asyncpg.Record | None:
    return await queries.delete_division(conn, tenant_id=tenant_id, id=division_id)


async def add_agents(conn: asyncpg.Connection, tenant_id: UUID, division_id: UUID, user_ids: list[UUID]) -> list[UUID]:
    rows = await queries.add_division_agents(conn, tenant_id=tenant_id, division_id=division_id, user_ids=user_ids)
    return sorted(r["user_id"] for r in rows)


async def remove_agents(
    conn: asyncpg.Connection, tenant_id: UUID, division_id: UUID, user_ids: list[UUID]
) -> list[UUID]:
    rows = await queries.remove_division_agents(conn, tenant_id=tenant_id, division_id=division_id, user_ids=user_ids)
    return sorted(r["user_id"] for r in rows)


async def members(conn: asyncpg.Connection, tenant_id: UUID, division_id: UUID) -> list[DivisionAgent]:
    return many(await queries.division_members(conn, tenant_id=tenant_id, division_id=division_id), DivisionAgent)


async def list_agents_page(
    conn: asyncpg.Connection, tenant_id: UUID, division_id: UUID, params: ListParams, q: str | None
) -> tuple[list[DivisionAgent], int]:
    rows = await queries.list_division_agents(
        conn, tenant_id=tenant_id, division_id=division_id, q=q, **params.sql_args()
    )
    total = await queries.count_division_agents(conn, tenant_id=tenant_id, division_id=division_id, q=q)
    return many(rows, DivisionAgent), total


async def agent_division_ids(conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID) -> list[UUID]:
    return [r["division_id"] for r in await queries.agent_division_ids(conn, tenant_id=tenant_id, user_id=user_id)]


async def exists(conn: asyncpg.Connection, tenant_id: UUID, division_id: UUID) -> bool:
    return bool(await queries.division_exists(conn, tenant_id=tenant_id, id=division_id))


async def is_member(conn: asyncpg.Connection, tenant_id: UUID, division_id: UUID, user_id: UUID) -> bool:
    return bool(await queries.is_division_member(conn, tenant_id=tenant_id, division_id=division_id, user_id=user_id))
