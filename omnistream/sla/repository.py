from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from omnistream.db import load_queries
from omnistream.kit.pagination import ListParams
from omnistream.kit.records import many
from omnistream.sla.schemas import SlaBreach, SlaConditions, SlaPolicy, SlaTargets

queries = load_queries("sla")

POLICY_COLUMNS = (
    "name",
    "description",
    "enabled",
    "position",
    "business_hours",
    "first_response_minutes",
    "next_response_minutes",
    "resolution_minutes",
    "channels",
    "division_ids",
    "priorities",
)


def _policy(row: Any) -> SlaPolicy:
    return SlaPolicy(
        id=row["id"],
        name=row["name"],
        description=row["description"],
        enabled=row["enabled"],
        position=row["position"],
        business_hours=row["business_hours"],
        targets=SlaTargets(
            first_response_minutes=row["first_response_minutes"],
            next_response_minutes=row["next_response_minutes"],
            resolution_minutes=row["resolution_minutes"],
        ),
        conditions=SlaConditions(
            channels=list(row["channels"]), division_ids=list(row["division_ids"]), priorities=list(row["priorities"])
        ),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


# ---------------------------------------------------------------- policies


async def list_policies(conn: asyncpg.Connection, tenant_id: UUID, *, enabled: bool | None = None) -> list[SlaPolicy]:
    return [_policy(row) for row in await queries.list_policies(conn, tenant_id=tenant_id, enabled=enabled)]


async def get_policy(conn: asyncpg.Connection, tenant_id: UUID, policy_id: UUID) -> SlaPolicy | None:
    row = await queries.get_policy(conn, tenant_id=tenant_id, id=policy_id)
    return None if row is None else _policy(row)


async def lock_policy(conn: asyncpg.Connection, tenant_id: UUID, policy_id: UUID) -> bool:
    return await queries.lock_policy(conn, tenant_id=tenant_id, id=policy_id) is not None


async def policy_count(conn: asyncpg.Connection, tenant_id: UUID) -> int:
    return await queries.policy_count(conn, tenant_id=tenant_id)


async def next_position(conn: asyncpg.Connection, tenant_id: UUID) -> int:
    return await queries.next_position(conn, tenant_id=tenant_id)


async def insert_policy(conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID | None, **fields: Any) -> UUID:
    return await queries.insert_policy(conn, tenant_id=tenant_id, user_id=user_id, **fields)


async def update_policy(
    conn: asyncpg.Connection, tenant_id: UUID, policy_id: UUID, user_id: UUID | None, **fields: Any
) -> None:
    await queries.update_policy(conn, tenant_id=tenant_id, id=policy_id, user_id=user_id, **fields)


async def delete_policy(conn: asyncpg.Connection, tenant_id: UUID, policy_id: UUID) -> bool:
    return await queries.delete_policy(conn, tenant_id=tenant_id, id=policy_id) is not None


# ---------------------------------------------------------------- the clocks


async def lock_state(conn: asyncpg.Connection, tenant_id: UUID, conversation_id: UUID) -> asyncpg.Record | None:
    return await queries.lock_state(conn, tenant_id=tenant_id, conversation_id=conversation_id)


async def insert_state(
    conn: asyncpg.Connection, tenant_id: UUID, conversation_id: UUID, at: datetime, status: str
) -> None:
    await queries.insert_state(conn, tenant_id=tenant_id, conversation_id=conversation_id, at=at, status=status)


async def save_state(conn: asyncpg.Connection, tenant_id: UUID, conversation_id: UUID, **fields: Any) -> None:
    await queries.save_state(conn, tenant_id=tenant_id, conversation_id=conversation_id, **fields)


async def open_targets(conn: asyncpg.Connection, tenant_id: UUID, conversation_id: UUID) -> list[asyncpg.Record]:
    return list(await queries.open_targets(conn, tenant_id=tenant_id, conversation_id=conversation_id))


async def targets_started(conn: asyncpg.Connection, tenant_id: UUID, conversation_id: UUID) -> set[str]:
    rows = await queries.targets_started(conn, tenant_id=tenant_id, conversation_id=conversation_id)
    return {row["target"] for row in rows}


async def insert_target(conn: asyncpg.Connection, tenant_id: UUID, conversation_id: UUID, **fields: Any) -> None:
    await queries.insert_target(conn, tenant_id=tenant_id, conversation_id=conversation_id, **fields)


async def close_targets(
    conn: asyncpg.Connection, tenant_id: UUID, conversation_id: UUID, targets: Sequence[str], at: datetime, *, met: bool
) -> None:
    await queries.close_targets(
        conn, tenant_id=tenant_id, conversation_id=conversation_id, targets=list(targets), at=at, met=met
    )


async def retime_target(conn: asyncpg.Connection, tenant_id: UUID, target_id: UUID, **fields: Any) -> None:
    await queries.retime_target(conn, tenant_id=tenant_id, id=target_id, **fields)


async def conversation_state(conn: Any, tenant_id: UUID, conversation_id: UUID) -> asyncpg.Record | None:
    return await queries.conversation_state(conn, tenant_id=tenant_id, conversation_id=conversation_id)


async def conversation_targets(conn: Any, tenant_id: UUID, conversation_id: UUID) -> list[asyncpg.Record]:
    return list(await queries.conversation_targets(conn, tenant_id=tenant_id, conversation_id=conversation_id))


# ---------------------------------------------------------------- the monitor


async def tenants_with_due_targets(conn: asyncpg.Connection, now: datetime, limit: int) -> list[UUID]:
    return [row["tenant_id"] for row in await queries.tenants_with_due_targets(conn, now=now, limit=limit)]


async def due_targets(conn: asyncpg.Connection, tenant_id: UUID, now: datetime, limit: int) -> list[asyncpg.Record]:
    return list(await queries.due_targets(conn, tenant_id=tenant_id, now=now, limit=limit))


async def record_breaches(
    conn: asyncpg.Connection, tenant_id: UUID, now: datetime, target_ids: Sequence[UUID]
) -> list[asyncpg.Record]:
    """The breaches this call recorded: not those another call recorded first, nor clocks met meanwhile."""
    return list(await queries.record_breaches(conn, tenant_id=tenant_id, now=now, target_ids=list(target_ids)))


async def link_breach_events(conn: asyncpg.Connection, tenant_id: UUID, events: dict[UUID, UUID]) -> None:
    await queries.link_breach_events(
        conn, tenant_id=tenant_id, target_ids=list(events), event_ids=list(events.values())
    )


async def mark_breached(conn: asyncpg.Connection, tenant_id: UUID, target_ids: Sequence[UUID], now: datetime) -> None:
    await queries.mark_breached(conn, tenant_id=tenant_id, ids=list(target_ids), now=now)


# ---------------------------------------------------------------- breaches


async def list_breaches(
    conn: Any, tenant_id: UUID, policy_id: UUID, params: ListParams, **filters: Any
) -> tuple[list[SlaBreach], int]:
    rows = await queries.list_breaches(conn, tenant_id=tenant_id, policy_id=policy_id, **filters, **params.sql_args())
    total = await queries.count_breaches(conn, tenant_id=tenant_id, policy_id=policy_id, **filters)
    return many(rows, SlaBreach), total
