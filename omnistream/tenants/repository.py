from __future__ import annotations

from uuid import UUID

import asyncpg

from omnistream.db import load_queries
from omnistream.kit.records import one
from omnistream.tenants.schemas import Tenant

queries = load_queries("tenants")


async def slug_taken(conn: asyncpg.Connection, slug: str) -> bool:
    return bool(await queries.slug_taken(conn, slug=slug))


async def insert(conn: asyncpg.Connection, tenant_id: UUID, name: str, slug: str, timezone: str) -> None:
    await queries.insert_tenant(conn, id=tenant_id, name=name, slug=slug, timezone=timezone)


async def get(conn: asyncpg.Connection, tenant_id: UUID) -> Tenant | None:
    return one(await queries.get_tenant(conn, tenant_id=tenant_id), Tenant)


async def get_timezone(conn: asyncpg.Connection, tenant_id: UUID) -> str | None:
    return await queries.get_timezone(conn, tenant_id=tenant_id)


async def set_timezone(conn: asyncpg.Connection, tenant_id: UUID, timezone: str) -> bool:
    return await queries.set_timezone(conn, tenant_id=tenant_id, timezone=timezone) is not None


async def id_by_slug(conn: asyncpg.Connection, slug: str) -> UUID | None:
    return await queries.tenant_id_by_slug(conn, slug=slug)
