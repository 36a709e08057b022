from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec

from omnistream.contacts.schemas import Channel, Tags
from omnistream.kit.schema import AwareDateTime, Input, Name, Schema
from omnistream.messages.schemas import Body, Template

CampaignStatus = Literal["draft", "scheduled", "sending", "completed", "cancelled"]
RecipientStatus = Literal["pending", "queued", "sent", "delivered", "read", "failed", "skipped", "cancelled"]
MAX_CONTACT_IDS = 1000
VARIABLES_NOTE = (
    "Text and template parameters may name `{{variables}}`: `{{contact.name}}`, `{{contact.phone}}`, or a column "
    "of the recipients' CSV file (lowercase letters, digits and _), filled in for each recipient."
)


class CampaignCreate(Input):
    name: Name
    channel: Channel
    account_id: UUID
    """A connected integration account of the channel: the campaign's messages go out through it."""
    text: Body | None = None
    """The message of a Messenger, Instagram or email campaign (WhatsApp needs a template)."""
    template: Template | None = None
    """WhatsApp: an APPROVED template and its parameters (Meta allows a business to start a
    conversation only with a template)."""


class CampaignUpdate(Input):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    account_id: UUID | msgspec.UnsetType = msgspec.UNSET
    text: Body | msgspec.UnsetType = msgspec.UNSET
    template: Template | msgspec.UnsetType = msgspec.UNSET


class CampaignProgress(Schema):
    """Where each recipient is: sent counts those sent or further (delivered, read), delivered
    those delivered or read; replied, those who wrote back after the campaign's message."""

    total: int
    pending: int
    """Not yet handed to delivery."""
    queued: int
    """Waiting in the delivery queue."""
    sent: int
    delivered: int
    read: int
    replied: int
    failed: int
    skipped: int
    """Never sent: the contact opted out, or the account was disconnected."""
    cancelled: int


class Campaign(Schema):
    id: UUID
    name: str
    channel: Channel
    account_id: UUID
    message_type: Literal["text", "template"]
    text: str | None
    template: dict[str, Any] | None
    variables: list[str]
    """The `{{variables}}` the message names, which each recipient's CSV row must fill (besides
    contact.name and contact.phone, which come from the contact)."""
    status: CampaignStatus
    send_at: datetime | None
    """When sending starts (scheduled) or started."""
    started_at: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime
    progress: CampaignProgress | None
    """The counts (one campaign's GET and its changes answer them; lists leave them out)."""


class CampaignList(Schema):
    campaigns: list[Campaign]
    next_cursor: str | None
    total: int


class RecipientFilter(Input):
    tags: Tags = []
    """Contacts having every one of these tags (none: every contact)."""
    channel: Channel | None = None
    """Only contacts who have written on this channel."""


class RecipientsAdd(Input):
    """Exactly one of contact_ids and filter. Only contacts the campaign's channel reaches are
    added (an identity there, or for WhatsApp a phone, for email an address)."""

    contact_ids: Annotated[list[UUID], msgspec.Meta(min_length=1, max_length=MAX_CONTACT_IDS)] | None = None
    filter: RecipientFilter | None = None


class RecipientRow(Schema):
    line: int
    """The line of the file the row starts on (the header is line 1)."""
    phone: str
    status: Literal["added", "duplicate", "refused"]
    contact_id: UUID | None
    reason: str | None


class RecipientsAdded(Schema):
    added: int
    duplicates: int
    """Already among the recipients (or named twice): left as they were."""
    refused: int
    """CSV rows that could not be added (see rows); contacts the channel cannot reach."""
    opted_out: int
    """Of those added, contacts who opted out: they stay on the list and are skipped when sending."""
    total: int
    """The campaign's recipients now."""
    rows: list[RecipientRow]
    """CSV uploads: each row, with its line and why it was refused."""


class Recipient(Schema):
    id: UUID
    contact_id: UUID
    contact_name: str
    contact_phone: str | None
    variables: dict[str, str]
    status: RecipientStatus
    """pending, queued, skipped and cancelled are the recipient's; after queued, its message's."""
    skip_reason: str | None
    conversation_id: UUID | None
    message_id: UUID | None
    error_code: str | None
    error_message: str | None
    queued_at: datetime | None
    created_at: datetime


class RecipientList(Schema):
    recipients: list[Recipient]
    next_cursor: str | None
    total: int


class CampaignSend(Input):
    send_at: AwareDateTime | None = None
    """Later: the campaign is scheduled and starts then. Left out: it starts now."""


class RecipientsCleared(Schema):
    message: str
    id: str
    removed: int
