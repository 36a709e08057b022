from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from omnistream.db import load_queries
from omnistream.kit.pagination import ListParams

queries = load_queries("integrations")


async def route_accounts(conn: asyncpg.Connection, channel: str, external_ids: list[str]) -> list[asyncpg.Record]:
    return list(await queries.route_accounts(conn, channel=channel, external_ids=external_ids))


async def verify_token_known(conn: asyncpg.Connection, channels: list[str], digest: str) -> bool:
    return bool(await queries.verify_token_known(conn, channels=channels, digest=digest))


async def active_account_ids(conn: Any, tenant_id: UUID, account_ids: list[UUID]) -> list[UUID]:
    return [row["id"] for row in await queries.active_account_ids(conn, tenant_id=tenant_id, ids=account_ids)]


async def sending_account(conn: Any, tenant_id: UUID, channel: str, account_id: UUID | None) -> asyncpg.Record | None:
    return await queries.sending_account(conn, tenant_id=tenant_id, channel=channel, account_id=account_id)


async def account_by_business_account(
    conn: Any, tenant_id: UUID, business_account_id: str | None
) -> asyncpg.Record | None:
    return await queries.account_by_business_account(conn, tenant_id=tenant_id, business_account_id=business_account_id)


# ---------------------------------------------------------------- channel integrations


async def list_integrations(conn: Any, tenant_id: UUID) -> list[asyncpg.Record]:
    return list(await queries.list_integrations(conn, tenant_id=tenant_id))


async def get_integration(conn: Any, tenant_id: UUID, channel: str) -> asyncpg.Record | None:
    return await queries.get_integration(conn, tenant_id=tenant_id, channel=channel)


async def lock_integration(conn: asyncpg.Connection, tenant_id: UUID, channel: str) -> bool:
    return await queries.lock_integration(conn, tenant_id=tenant_id, channel=channel) is not None


async def upsert_integration(conn: asyncpg.Connection, tenant_id: UUID, channel: str, **fields: Any) -> asyncpg.Record:
    return await queries.upsert_integration(conn, tenant_id=tenant_id, channel=channel, **fields)


async def delete_integration(conn: asyncpg.Connection, tenant_id: UUID, channel: str) -> bool:
    return await queries.delete_integration(conn, tenant_id=tenant_id, channel=channel) is not None


# ---------------------------------------------------------------- integration accounts


async def get_account(conn: Any, tenant_id: UUID, account_id: UUID) -> asyncpg.Record | None:
    return await queries.get_account(conn, tenant_id=tenant_id, id=account_id)


async def lock_account(conn: asyncpg.Connection, tenant_id: UUID, account_id: UUID) -> asyncpg.Record | None:
    return await queries.lock_account(conn, tenant_id=tenant_id, id=account_id)


async def account_by_external_id(
    conn: asyncpg.Connection, tenant_id: UUID, channel: str, external_id: str
) -> asyncpg.Record | None:
    return await queries.account_by_external_id(conn, tenant_id=tenant_id, channel=channel, external_id=external_id)


async def list_accounts(
    conn: Any, tenant_id: UUID, params: ListParams, channel: str | None, status: str | None
) -> tuple[list[asyncpg.Record], int]:
    rows = await queries.list_accounts(conn, tenant_id=tenant_id, channel=channel, status=status, **params.sql_args())
    total = await queries.count_accounts(conn, tenant_id=tenant_id, channel=channel, status=status)
    return list(rows), total


async def lock_channel_defaults(conn: asyncpg.Connection, tenant_id: UUID, channel: str) -> None:
    await queries.lock_channel_defaults(conn, tenant_id=tenant_id, channel=channel)


async def insert_account(conn: asyncpg.Connection, tenant_id: UUID, **fields: Any) -> UUID:
    row = await queries.insert_account(conn, tenant_id=tenant_id, **fields)
    return row["id"]


async def update_account(conn: asyncpg.Connection, tenant_id: UUID, account_id: UUID, **fields: Any) -> None:
    await queries.update_account(conn, tenant_id=tenant_id, id=account_id, **fields)


async def move_default(conn: asyncpg.Connection, tenant_id: UUID, channel: str, account_id: UUID) -> None:
    # Two statements: the unique index on the default is checked row by row, so one UPDATE that
    # sets the new default before clearing the old one would trip it.
    await queries.clear_default(conn, tenant_id=tenant_id, channel=channel)
    await queries.make_default(conn, tenant_id=tenant_id, id=account_id)


async def promote_oldest(conn: asyncpg.Connection, tenant_id: UUID, channel: str) -> UUID | None:
    row = await queries.promote_oldest(conn, tenant_id=tenant_id, channel=channel)
    return None if row is None else row["id"]


async def delete_account(conn: asyncpg.Connection, tenant_id: UUID, account_id: UUID) -> asyncpg.Record | None:
    return await queries.delete_account(conn, tenant_id=tenant_id, id=account_id)


async def set_account_status(conn: asyncpg.Connection, tenant_id: UUID, account_id: UUID, status: str) -> bool:
    return await queries.set_account_status(conn, tenant_id=tenant_id, id=account_id, status=status) is not None


# ---------------------------------------------------------------- key rotation


async def tenants_with_secrets(conn: Any) -> list[UUID]:
    return [row["tenant_id"] for row in await queries.tenants_with_secrets(conn)]


async def sealed_integrations(conn: Any, tenant_id: UUID) -> list[asyncpg.Record]:
    return list(await queries.sealed_integrations(conn, tenant_id=tenant_id))


async def reseal_integration(conn: Any, tenant_id: UUID, channel: str, **sealed: str | None) -> None:
    await queries.reseal_integration(conn, tenant_id=tenant_id, channel=channel, **sealed)


async def sealed_accounts(conn: Any, tenant_id: UUID) -> list[asyncpg.Record]:
    return list(await queries.sealed_accounts(conn, tenant_id=tenant_id))


async def reseal_account(conn: Any, tenant_id: UUID, account_id: UUID, **sealed: Any) -> None:
    await queries.reseal_account(conn, tenant_id=tenant_id, id=account_id, **sealed)


async def record_phone_quality(
    conn: Any, tenant_id: UUID, business_account_id: str, digits: str, quality: dict[str, Any]
) -> int:
    rows = await queries.record_phone_quality(
        conn, tenant_id=tenant_id, business_account_id=business_account_id, digits=digits, quality=quality
    )
    return len(rows)
