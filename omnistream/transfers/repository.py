from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from omnistream.db import load_queries
from omnistream.kit.pagination import ListParams
from omnistream.kit.records import many, one
from omnistream.transfers.schemas import Transfer

queries = load_queries("transfers")


async def insert(conn: asyncpg.Connection, tenant_id: UUID, **values: Any) -> UUID:
    return await queries.insert_transfer(conn, tenant_id=tenant_id, **values)


async def get(conn: asyncpg.Connection, tenant_id: UUID, transfer_id: UUID) -> Transfer | None:
    return one(await queries.get_transfer(conn, tenant_id=tenant_id, id=transfer_id), Transfer)


async def list_page(
    conn: asyncpg.Connection, tenant_id: UUID, conversation_id: UUID, params: ListParams
) -> tuple[list[Transfer], int]:
    rows = await queries.list_transfers(conn, tenant_id=tenant_id, conversation_id=conversation_id, **params.sql_args())
    total = await queries.count_transfers(conn, tenant_id=tenant_id, conversation_id=conversation_id)
    return many(rows, Transfer), total
