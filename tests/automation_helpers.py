"""Rules and a processor for automation tests: rules stored as the rules API stores them, and the
worker's processor run in the test's own event loop."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec
from arq import ArqRedis

from omnistream.automation.schemas import AutomationRuleCreate
from omnistream.automation_events.processing import Processor
from omnistream.db import Database
from tests.conftest import Tenant


async def make_rule(
    db: Database, tenant: Tenant, trigger_type: str, actions: list[dict[str, Any]], **fields: Any
) -> UUID:
    """A rule stored as the API stores it (decoded by the API's own Struct first)."""
    body = msgspec.convert(
        {"name": fields.pop("name", "Rule"), "trigger_type": trigger_type, "actions": actions} | fields,
        AutomationRuleCreate,
    )
    row = msgspec.to_builtins(body)
    async with db.tenant(UUID(tenant.id)) as conn:
        return await conn.fetchval(
            """INSERT INTO automation_rules (tenant_id, name, description, is_active, trigger_type, conditions, actions,
                                             alert_settings, schedule_settings, priority, rollout_percentage,
                                             stop_on_match, cooldown_secs, created_by)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id""",
            UUID(tenant.id),
            row["name"],
            row["description"],
            row["is_active"],
            row["trigger_type"],
            row["conditions"],
            row["actions"],
            row["alert_settings"],
            row["schedule_settings"],
            row["priority"],
            row["rollout_percentage"],
            row["stop_on_match"],
            row["cooldown_secs"],
            UUID(tenant.admin_id),
        )


async def process_all(db: Database, arq: ArqRedis, processor: Processor | None = None, rounds: int = 10) -> int:
    """Process every due event (and those its actions cause), as a worker would; how many were claimed."""
    processor = processor or Processor(db, arq)
    total = 0
    for _ in range(rounds):
        claimed = await processor.process_due()
        total += claimed
        if not claimed:
            break
    return total


async def runs_of(db: Database, tenant: Tenant, **where: Any) -> list[dict[str, Any]]:
    clauses = "".join(f" AND {key} = ${i + 2}" for i, key in enumerate(where))
    async with db.tenant(UUID(tenant.id)) as conn:
        rows = await conn.fetch(
            f"SELECT * FROM automation_runs WHERE tenant_id = $1{clauses} ORDER BY created_at",
            UUID(tenant.id),
            *where.values(),
        )
    return [dict(row) for row in rows]


async def events_of(db: Database, tenant: Tenant) -> list[dict[str, Any]]:
    async with db.tenant(UUID(tenant.id)) as conn:
        rows = await conn.fetch(
            "SELECT * FROM automation_events WHERE tenant_id = $1 ORDER BY created_at, id", UUID(tenant.id)
        )
    return [dict(row) for row in rows]
