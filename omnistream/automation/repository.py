from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import UUID

import asyncpg

from omnistream.automation.schemas import AutomationControl, AutomationRule
from omnistream.db import load_queries
from omnistream.kit.records import many, one

queries = load_queries("automation")


async def insert_events(conn: asyncpg.Connection, events: list[dict[str, Any]]) -> None:
    await queries.insert_events(conn, events)


async def rules_for_matching(conn: asyncpg.Connection, tenant_id: UUID) -> list[AutomationRule]:
    return many(await queries.rules_for_matching(conn, tenant_id=tenant_id), AutomationRule)


async def control(conn: asyncpg.Connection, tenant_id: UUID) -> tuple[AutomationControl | None, int]:
    """The tenant's control state (None when never set) and its rules version."""
    row = await queries.get_control(conn, tenant_id=tenant_id)
    if row is None:
        return None, 1
    return one(row, AutomationControl), row["rules_version"]


async def list_rules(conn: Any, tenant_id: UUID, **filters: Any) -> list[AutomationRule]:
    return many(await queries.list_rules(conn, tenant_id=tenant_id, **filters), AutomationRule)


async def list_snoozed_rules(
    conn: Any, tenant_id: UUID, limit: int, offset: int, **filters: Any
) -> list[AutomationRule]:
    rows = await queries.list_snoozed_rules(conn, tenant_id=tenant_id, limit=limit, offset=offset or None, **filters)
    return many(rows, AutomationRule)


async def get_rule(conn: Any, tenant_id: UUID, rule_id: UUID) -> AutomationRule | None:
    row = await queries.get_rule(conn, tenant_id=tenant_id, id=rule_id)
    return None if row is None else one(row, AutomationRule)


async def lock_rule(conn: asyncpg.Connection, tenant_id: UUID, rule_id: UUID) -> AutomationRule | None:
    row = await queries.lock_rule(conn, tenant_id=tenant_id, id=rule_id)
    return None if row is None else one(row, AutomationRule)


async def insert_rule(conn: asyncpg.Connection, tenant_id: UUID, actor_id: UUID | None, **rule: Any) -> UUID:
    return await queries.insert_rule(conn, tenant_id=tenant_id, actor_id=actor_id, **rule)


async def save_rule(conn: asyncpg.Connection, tenant_id: UUID, actor_id: UUID | None, **rule: Any) -> None:
    await queries.save_rule(conn, tenant_id=tenant_id, actor_id=actor_id, **rule)


async def delete_rule(conn: asyncpg.Connection, tenant_id: UUID, rule_id: UUID) -> bool:
    return await queries.delete_rule(conn, tenant_id=tenant_id, id=rule_id) is not None


async def snooze_rules(
    conn: asyncpg.Connection, tenant_id: UUID, actor_id: UUID | None, ids: list[UUID], snoozed_until: datetime | None
) -> int:
    rows = await queries.snooze_rules(
        conn, tenant_id=tenant_id, actor_id=actor_id, ids=ids, snoozed_until=snoozed_until
    )
    return len(rows)


async def upsert_control(
    conn: asyncpg.Connection, tenant_id: UUID, actor_id: UUID | None, **state: Any
) -> AutomationControl:
    return one(await queries.upsert_control(conn, tenant_id=tenant_id, actor_id=actor_id, **state), AutomationControl)


async def stats_overview(conn: Any, tenant_id: UUID, since: datetime) -> asyncpg.Record:
    return await queries.stats_overview(conn, tenant_id=tenant_id, since=since)


async def runs_timeseries(
    conn: Any, tenant_id: UUID, today: date, window_days: int, bucket_days: int, rule_id: UUID | None = None
) -> list[asyncpg.Record]:
    return await queries.runs_timeseries(
        conn, tenant_id=tenant_id, today=today, window_days=window_days, bucket_days=bucket_days, rule_id=rule_id
    )


async def rule_run_counts(
    conn: Any, tenant_id: UUID, since: datetime, rule_id: UUID | None = None
) -> list[asyncpg.Record]:
    return await queries.rule_run_counts(conn, tenant_id=tenant_id, since=since, rule_id=rule_id)
