"""The automation outbox: events written in the same transaction as the change that causes them.

Processing them (matching rules, running actions) belongs to the automation engine; until it
claims them they wait as `pending`, so nothing is lost if no worker is listening yet.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import msgspec

from omnistream.automation import repository

EVENT_TYPES = ("conversation_created", "message_received_inbound", "status_changed", "sla_breached")

_canonical = msgspec.json.Encoder(order="sorted")


def payload_hash(payload: dict[str, Any]) -> str:
    """SHA-256 hex of the canonical JSON (sorted keys, no whitespace) of a payload."""
    return hashlib.sha256(_canonical.encode(payload)).hexdigest()


@dataclass
class Outbox:
    """Collects a transaction's events, then writes them in one statement before commit."""

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
                "payload_hash": payload_hash(body),
                "source": self.source,
            }
        )
        return event_id

    def columns(self) -> dict[str, list[Any]]:
        """The events as one array per column (`event_ids`, `event_types`, ...), for a statement
        that writes them together with the change itself."""
        names = ("id", "event_type", "conversation_id", "contact_id", "payload", "payload_hash", "source")
        plural = {
            "id": "event_ids",
            "event_type": "event_types",
            "conversation_id": "event_conversation_ids",
            "contact_id": "event_contact_ids",
            "payload": "event_payloads",
            "payload_hash": "event_hashes",
            "source": "event_sources",
        }
        return {plural[name]: [event[name] for event in self.events] for name in names}

    async def write(self, conn: asyncpg.Connection) -> list[UUID]:
        if self.events:
            await repository.insert_events(conn, self.events)
        return [e["id"] for e in self.events]
