from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from omnistream.db import load_queries

queries = load_queries("roles")


async def insert(
    conn: asyncpg.Connection,
    tenant_id: UUID,
    *,
    name: str,
    description: str,
    base_role: str,
    is_builtin: bool,
    permissions: list[str],
) -> UUID:
    return await queries.insert_role(
        conn,
        tenant_id=tenant_id,
        name=name,
        description=description,
        base_role=base_role,
        is_builtin=is_builtin,
        permissions=permissions,
    )


async def list_all(conn: asyncpg.Connection, tenant_id: UUID) -> list[asyncpg.Record]:
    return await queries.list_roles(conn, tenant_id=tenant_id)


async def get(conn: asyncpg.Connection, tenant_id: UUID, role_id: UUID) -> asyncpg.Record | None:
    return await queries.get_role(conn, tenant_id=tenant_id, id=role_id)


async def lock(conn: asyncpg.Connection, tenant_id: UUID, role_id: UUID) -> asyncpg.Record | None:
    return await queries.lock_role(conn, tenant_id=tenant_id, id=role_id)


async def builtin_id(conn: asyncpg.Connection, tenant_id: UUID, base_role: str) -> UUID:
    return await queries.get_builtin_role_id(conn, tenant_id=tenant_id, base_role=base_role)


async def name_taken(conn: asyncpg.Connection, tenant_id: UUID, name: str, except_id: UUID | None) -> bool:
    return bool(await queries.role_name_taken(conn, tenant_id=tenant_id, name=name, except_id=except_id))


async def update(conn: asyncpg.Connection, tenant_id: UUID, role_id: UUID, **values: Any) -> None:
    await queries.update_role(conn, tenant_id=tenant_id, id=role_id, **values)


async def delete(conn: asyncpg.Connection, tenant_id: UUID, role_id: UUID) -> None:
    await queries.release_role_of_deleted_agents(conn, tenant_id=tenant_id, id=role_id)
    await queries.delete_role(conn, tenant_id=tenant_id, id=role_id)
