from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from omnistream.db import load_queries

queries = load_queries("integrations")


async def route_accounts(conn: asyncpg.Connection, channel: str, external_ids: list[str]) -> list[asyncpg.Record]:
    return list(await queries.route_accounts(conn, channel=channel, external_ids=external_ids))


async def verify_token_known(conn: asyncpg.Connection, channels: list[str], digest: str) -> bool:
    return bool(await queries.verify_token_known(conn, channels=channels, digest=digest))


async def sending_account(conn: Any, tenant_id: UUID, channel: str, account_id: UUID | None) -> asyncpg.Record | None:
    return await queries.sending_account(conn, tenant_id=tenant_id, channel=channel, account_id=account_id)


async def account_by_business_account(
    conn: Any, tenant_id: UUID, business_account_id: str | None
) -> asyncpg.Record | None:
    return await queries.account_by_business_account(conn, tenant_id=tenant_id, business_account_id=business_account_id)
