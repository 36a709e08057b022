from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from omnistream.contacts.schemas import Contact
from omnistream.db import load_queries
from omnistream.kit.pagination import ListParams
from omnistream.kit.records import many, one

queries = load_queries("contacts")


async def get(conn: asyncpg.Connection, tenant_id: UUID, contact_id: UUID) -> Contact | None:
    return one(await queries.get_contact(conn, tenant_id=tenant_id, id=contact_id), Contact)


async def list_page(
    conn: asyncpg.Connection, tenant_id: UUID, params: ListParams, filters: dict[str, Any]
) -> tuple[list[Contact], int]:
    rows = await queries.list_contacts(conn, tenant_id=tenant_id, **filters, **params.sql_args())
    total = await queries.count_contacts(conn, tenant_id=tenant_id, **filters)
    return many(rows, Contact), total


async def update(conn: asyncpg.Connection, tenant_id: UUID, contact_id: UUID, **values: Any) -> bool:
    return await queries.update_contact(conn, tenant_id=tenant_id, id=contact_id, **values) is not None
