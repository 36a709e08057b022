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


async def reachable(
    conn: asyncpg.Connection,
    tenant_id: UUID,
    channel: str,
    *,
    ids: list[UUID] | None,
    tags: list[str] | None,
    written_on: str | None,
    after: tuple[Any, UUID] | None,
    batch: int,
) -> list[asyncpg.Record]:
    return list(
        await queries.reachable_contacts(
            conn,
            tenant_id=tenant_id,
            channel=channel,
            ids=ids,
            tags=tags,
            written_on=written_on,
            limit=batch,
            after_asc=after is not None,
            cursor_at=after[0] if after else None,
            cursor_id=after[1] if after else None,
        )
    )


async def existing_ids(conn: asyncpg.Connection, tenant_id: UUID, ids: list[UUID]) -> set[UUID]:
    return {r["id"] for r in await queries.existing_contact_ids(conn, tenant_id=tenant_id, ids=ids)}


async def opted_out_ids(conn: asyncpg.Connection, tenant_id: UUID, ids: list[UUID]) -> set[UUID]:
    return {r["id"] for r in await queries.opted_out_contact_ids(conn, tenant_id=tenant_id, ids=ids)}


async def identified(
    conn: asyncpg.Connection, tenant_id: UUID, channel: str, external_ids: list[str]
) -> dict[str, UUID]:
    rows = await queries.identified_contacts(conn, tenant_id=tenant_id, channel=channel, external_ids=external_ids)
    return {r["external_id"]: r["contact_id"] for r in rows}


async def insert_contacts(
    conn: asyncpg.Connection, tenant_id: UUID, names: list[str], phones: list[str]
) -> dict[str, UUID]:
    rows = await queries.insert_contacts(conn, tenant_id=tenant_id, names=names, phones=phones)
    return {r["phone"]: r["id"] for r in rows}


async def insert_identities(
    conn: asyncpg.Connection, tenant_id: UUID, channel: str, contacts: dict[str, UUID]
) -> dict[str, UUID]:
    rows = await queries.insert_identities(
        conn, tenant_id=tenant_id, channel=channel, external_ids=list(contacts), contact_ids=list(contacts.values())
    )
    return {r["external_id"]: r["contact_id"] for r in rows}


async def delete_contacts(conn: asyncpg.Connection, tenant_id: UUID, ids: list[UUID]) -> None:
    await queries.delete_contacts(conn, tenant_id=tenant_id, ids=ids)
