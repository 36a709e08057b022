from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec

from omnistream.contacts.schemas import Channel
from omnistream.kit.schema import NO_NUL, NOT_BLANK, WHITESPACE, Input, Schema, pattern

MessageType = Literal[
    "text",
    "image",
    "audio",
    "video",
    "document",
    "sticker",
    "location",
    "contacts",
    "template",
    "interactive",
    "reaction",
    "system",
]
SendableType = Literal["text", "image", "audio", "video", "document", "location", "template"]
MEDIA_TYPES = ("image", "audio", "video", "document")

URL_PATTERN = pattern(rf"^https?://[^{WHITESPACE}\x00]+$", "must be an http or https URL")

Url = Annotated[str, msgspec.Meta(max_length=2048, pattern=URL_PATTERN)]
ShortText = Annotated[str, msgspec.Meta(min_length=1, max_length=256, pattern=NO_NUL)]
Body = Annotated[str, msgspec.Meta(min_length=1, max_length=4096, pattern=NOT_BLANK)]


class ChatMessage(Schema):
    id: UUID
    conversation_id: UUID
    channel: Channel
    direction: Literal["inbound", "outbound"]
    type: MessageType
    text: str | None
    content: dict[str, Any]
    provider_message_id: str | None
    status: Literal["received", "queued", "sent", "delivered", "read", "failed"]
    error_code: str | None
    error_message: str | None
    sender_type: Literal["contact", "agent", "ai", "automation", "system"]
    sender_agent_id: UUID | None
    sent_at: datetime | None
    delivered_at: datetime | None
    read_at: datetime | None
    failed_at: datetime | None
    created_at: datetime


class ChatMessageList(Schema):
    messages: list[ChatMessage]
    next_cursor: str | None
    total: int


class MessageSearchHit(ChatMessage):
    rank: float
    snippet: str
    """The matching text with hits in <mark>; the rest is HTML-escaped."""


class MessageSearchResult(Schema):
    messages: list[MessageSearchHit]
    next_cursor: str | None
    total: int


MEDIA_TYPE_PATTERN = pattern(r"^[A-Za-z0-9_.+-]+/[A-Za-z0-9_.+-]+$", "must be a media type, such as image/jpeg")


class Media(Input):
    url: Url
    mime_type: (
        Annotated[
            str,
            msgspec.Meta(max_length=100, pattern=MEDIA_TYPE_PATTERN),
        ]
        | None
    ) = None
    filename: ShortText | None = None


class Location(Input):
    latitude: Annotated[float, msgspec.Meta(ge=-90, le=90)]
    longitude: Annotated[float, msgspec.Meta(ge=-180, le=180)]
    name: ShortText | None = None
    address: ShortText | None = None


TEMPLATE_NAME_PATTERN = pattern(r"^[a-z0-9_]+$", "may hold only lowercase letters, digits and _")

LANGUAGE_PATTERN = pattern(r"^[A-Za-z]{2,3}([_-][A-Za-z0-9]+)*$", "must be a language code, such as en or pt_BR")


class Template(Input):
    name: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=512,
            pattern=TEMPLATE_NAME_PATTERN,
        ),
    ]
    language: Annotated[
        str,
        msgspec.Meta(
            min_length=2,
            max_length=15,
            pattern=LANGUAGE_PATTERN,
        ),
    ]
    components: Annotated[list[dict[str, Any]], msgspec.Meta(max_length=20)] = []


class MessageSend(Input):
    type: SendableType = "text"
    text: Body | None = None
    """The text of a text message, or the caption of an image, video or document."""
    media: Media | None = None
    location: Location | None = None
    template: Template | None = None


class InboundMessage(msgspec.Struct, kw_only=True, frozen=True):
    """A customer's message as a channel delivered it, for the ingestion service."""

    tenant_id: UUID
    channel: Channel
    external_id: str
    account_id: UUID | None = None
    provider_message_id: str | None = None
    type: MessageType = "text"
    text: str | None = None
    content: dict[str, Any] = {}
    contact_name: str | None = None
    contact_phone: str | None = None
    contact_email: str | None = None
    sent_at: datetime | None = None
    source: str = "webhook"


class IngestResult(msgspec.Struct, frozen=True):
    message_id: UUID
    conversation_id: UUID
    duplicate: bool
    contact_id: UUID | None = None
    conversation_created: bool = False
    event_ids: list[UUID] = []
