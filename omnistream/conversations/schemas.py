from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from omnistream.contacts.schemas import Channel, Tags
from omnistream.kit.schema import Input, Schema, Text

Status = Literal["open", "pending", "resolved", "closed", "expired"]
SettableStatus = Literal["open", "pending", "resolved", "closed"]
Priority = Literal["low", "normal", "high", "urgent"]
ConversationIds = Annotated[list[UUID], msgspec.Meta(min_length=1, max_length=500)]


class ContactSummary(Schema):
    id: UUID
    name: str
    phone: str | None
    email: str | None


class Conversation(Schema):
    id: UUID
    channel: Channel
    account_id: UUID | None
    status: Status
    assigned_agent_id: UUID | None
    division_id: UUID | None
    tags: list[str]
    priority: Priority
    handled_by: Literal["human", "ai"]
    ai_agent_id: UUID | None
    unread_count: int
    message_count: int
    last_message_at: datetime | None
    last_message_preview: str | None
    last_inbound_at: datetime | None
    last_outbound_at: datetime | None
    last_activity_at: datetime
    status_changed_at: datetime | None
    status_changed_by: UUID | None
    resolved_at: datetime | None
    created_at: datetime
    updated_at: datetime
    contact: ContactSummary


class ConversationList(Schema):
    conversations: list[Conversation]
    next_cursor: str | None
    total: int | None
    """How many match, on the first page (no cursor) or with with_total=true; null on later pages."""


class AssignRequest(Input):
    agent_id: UUID | None
    """The agent to assign, or null to unassign."""
    division_id: UUID | msgspec.UnsetType | None = msgspec.UNSET
    """Also move the conversation to this division (the agent must belong to it); null clears it."""


class StatusRequest(Input):
    status: SettableStatus
    reason: Text | None = None


class TagsRequest(Input):
    add: Tags = []
    remove: Tags = []
    set: Tags | None = None
    """Replaces all tags; cannot be combined with add or remove."""


class TakeoverRequest(Input):
    reason: Text = ""


class BulkRequest(Input):
    conversation_ids: ConversationIds
    action: Literal["assign", "status", "tags"]
    agent_id: UUID | None = None
    division_id: UUID | msgspec.UnsetType | None = msgspec.UNSET
    status: SettableStatus | None = None
    add_tags: Tags = []
    remove_tags: Tags = []


class BulkItemResult(Schema):
    id: UUID
    ok: bool
    error: str | None = None


class BulkResult(Schema):
    results: list[BulkItemResult]
    succeeded: int
    failed: int


class ExpireRequest(Input):
    channel: Channel | None = None
    dry_run: bool = False


class ExpireResult(Schema):
    expired: int
    conversation_ids: list[UUID]
    dry_run: bool
