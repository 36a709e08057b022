from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from omnistream.kit.pagination import BodyDateTime
from omnistream.kit.schema import Schema
from omnistream.messages.schemas import MessageSend

ScheduledStatus = Literal["pending", "sent", "cancelled", "failed"]


class ScheduledMessage(Schema):
    id: UUID
    conversation_id: UUID
    send_at: datetime
    status: ScheduledStatus
    message: dict[str, Any]
    """The message as it will be (or was) sent: the body of POST /api/conversations/{id}/messages."""
    message_id: UUID | None
    """Once sent: the message it became."""
    failure_reason: str | None
    """Why it could not be sent at its time (a closed conversation, WhatsApp's 24-hour window ...)."""
    created_by: UUID
    cancelled_by: UUID | None
    processed_at: datetime | None
    """When it was sent, failed or was cancelled."""
    created_at: datetime


class ScheduledMessageCreate(MessageSend, kw_only=True):
    send_at: BodyDateTime
    """When to send it: at least a minute ahead and at most a year."""


class ScheduledMessageList(Schema):
    scheduled_messages: list[ScheduledMessage]
    next_cursor: str | None
    total: int
