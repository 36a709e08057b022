"""The event types an outgoing webhook can subscribe to: public names for the outbox's events,
what each means, and an example of the `data` each delivery carries (also what a test sends)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_CONVERSATION = {
    "conversation_id": "5b0f4c3e-8d2a-4f7e-9a51-2c6e1d7b9f10",
    "contact_id": "0e9d8c7b-6a5f-4e3d-8c2b-1a0f9e8d7c6b",
    "channel": "whatsapp",
    "account_id": "7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d",
    "status": "open",
    "assigned_agent_id": None,
    "division_id": None,
    "tags": ["vip"],
    "priority": "normal",
    "handled_by": "human",
}
_AGENT = "3c2b1a09-8f7e-4d6c-b5a4-938271605f4e"
_MESSAGE = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"


@dataclass(frozen=True)
class EventType:
    name: str
    outbox_type: str
    description: str
    example: dict[str, Any]


CATALOG: tuple[EventType, ...] = (
    EventType(
        "conversation.created",
        "conversation_created",
        "A customer started a new conversation (their first message on a channel, or after the last one closed).",
        _CONVERSATION,
    ),
    EventType(
        "message.received",
        "message_received_inbound",
        "A customer's message arrived on any channel.",
        _CONVERSATION
        | {
            "message": {
                "id": _MESSAGE,
                "type": "text",
                "text": "Hi, where is my order?",
                "provider_message_id": "wamid.1",
            }
        },
    ),
    EventType(
        "message.sent",
        "message_sent",
        "An agent or an automation queued a message to the customer (sender_type agent or automation).",
        _CONVERSATION
        | {
            "assigned_agent_id": _AGENT,
            "message": {"id": _MESSAGE, "type": "text", "text": "It ships today."},
            "sender_type": "agent",
            "sender_agent_id": _AGENT,
        },
    ),
    EventType(
        "conversation.status_changed",
        "status_changed",
        "A conversation moved to another status (open, pending, resolved, closed, expired).",
        _CONVERSATION | {"status": "resolved", "previous_status": "open", "changed_by": _AGENT, "reason": None},
    ),
    EventType(
        "conversation.assigned",
        "conversation_assigned",
        "A conversation was assigned to an agent or a division, or unassigned.",
        _CONVERSATION
        | {
            "assigned_agent_id": _AGENT,
            "previous_agent_id": None,
            "previous_division_id": None,
            "assigned_by": None,
        },
    ),
    EventType(
        "csat.submitted",
        "csat_submitted",
        "A customer rated the conversation in a satisfaction survey.",
        _CONVERSATION | {"status": "resolved", "rating": 5, "comment": "Quick and friendly, thanks!"},
    ),
    EventType(
        "sla.breached",
        "sla_breached",
        "A conversation went past its service level target (first response or resolution time).",
        _CONVERSATION | {"sla_policy_id": "1d2c3b4a-5f6e-4789-a0b1-c2d3e4f5a6b7", "metric": "first_response"},
    ),
)

BY_NAME = {t.name: t for t in CATALOG}
PUBLIC_NAME = {t.outbox_type: t.name for t in CATALOG}
