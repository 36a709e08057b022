"""The automation outbox: events written in the same transaction as the change that causes them.

Processing them (matching rules, running actions) belongs to the automation engine; until it
claims them they wait as `pending`, so nothing is lost if no worker is listening yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import msgspec

from omnistream.automation import repository
from omnistream.automation.schemas import AutomationControl, AutomationRule

EVENT_TYPES = ("conversation_created", "message_received_inbound", "status_changed", "sla_breached")


@dataclass
class Outbox:
    """Collects a transaction's events, then writes them in one statement before commit.

    Each event's fingerprint (`payload_hash`) is computed by the statement that writes it, with
    the database's `payload_fingerprint`, as ingestion's events are.
    """

    tenant_id: UUID
    source: str
    events: list[dict[str, Any]] = field(default_factory=list)

    def add(self, event_type: str, conversation_id: UUID, contact_id: UUID | None, payload: dict[str, Any]) -> UUID:
        assert event_type in EVENT_TYPES, event_type
        body = msgspec.to_builtins(payload)
        event_id = uuid4()
        self.events.append(
            {
                "id": event_id,
                "tenant_id": self.tenant_id,
                "event_type": event_type,
                "conversation_id": conversation_id,
                "contact_id": contact_id,
                "payload": body,
                "source": self.source,
            }
        )
        return event_id

    async def write(self, conn: asyncpg.Connection) -> list[UUID]:
        if self.events:
            await repository.insert_events(conn, self.events)
        return [e["id"] for e in self.events]


async def rule_set(
    conn: asyncpg.Connection, tenant_id: UUID
) -> tuple[list[AutomationRule], AutomationControl | None, int]:
    """A tenant's rules (all of them), its control state and the version of both, read together
    (for the worker's matcher, inside the caller's transaction)."""
    control, version = await repository.control(conn, tenant_id)
    return await repository.rules_for_matching(conn, tenant_id), control, version
