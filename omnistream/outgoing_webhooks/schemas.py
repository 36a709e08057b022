from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec

from omnistream.automation.service import REDACTED
from omnistream.kit.schema import NO_NUL, Input, Schema, pattern

MAX_HEADERS = 20
MAX_EVENT_TYPES = 20
HIDDEN = REDACTED
"""What a custom header's value reads as once saved (as automation's webhook secrets do); sent back
unchanged in an update, it keeps the value."""

Url = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=2048,
        pattern=pattern(r"^[Hh][Tt][Tt][Pp][Ss]?://[^\x00-\x20\x7f]+$", "must be an http:// or https:// URL"),
        description="Where deliveries are posted: https (http only where private targets are allowed)",
    ),
]
EventTypeName = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=100,
        pattern=NO_NUL,
        description="A name from GET /api/outgoing-webhooks/event-types, such as message.received",
    ),
]
EventTypes = Annotated[list[EventTypeName], msgspec.Meta(min_length=1, max_length=MAX_EVENT_TYPES)]
Secret = Annotated[
    str,
    msgspec.Meta(
        min_length=16,
        max_length=200,
        pattern=pattern(r"^[!-~]+$", "must be 16 to 200 visible ASCII characters"),
        description="The HMAC-SHA256 signing key; made for you when not given",
    ),
]
HeaderName = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=100,
        pattern=pattern(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", "must be an HTTP header name (letters, digits, -)"),
    ),
]
HeaderValue = Annotated[
    str,
    msgspec.Meta(max_length=1000, pattern=pattern(r"^[ -~]*$", "must be printable ASCII (no line breaks)")),
]
Headers = Annotated[
    dict[HeaderName, HeaderValue],
    msgspec.Meta(
        max_length=MAX_HEADERS,
        description=f"Sent with every delivery (at most {MAX_HEADERS}); content and X-OmniStream-* headers "
        f"cannot be overridden (422). Values read {HIDDEN!r} once saved.",
    ),
]
Description = Annotated[str, msgspec.Meta(max_length=500, pattern=NO_NUL)]


class OutgoingWebhook(Schema):
    id: UUID
    url: str
    event_types: list[str]
    description: str | None
    headers: dict[str, str]
    """The custom headers' names; their values read "(hidden)"."""
    secret_hint: str
    """The signing secret's last four characters: the secret itself is shown only at creation."""
    enabled: bool
    disabled_reason: str | None
    """Why it was disabled: by an admin, a 410 Gone answer, or a day of failed deliveries."""
    disabled_at: datetime | None
    consecutive_failures: int
    """Attempts failed since the last success."""
    failing_since: datetime | None
    last_success_at: datetime | None
    last_failure_at: datetime | None
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime


class OutgoingWebhookCreated(OutgoingWebhook):
    secret: str
    """The signing secret, shown this once: keep it to verify X-OmniStream-Signature."""


class OutgoingWebhookCreate(Input):
    url: Url
    event_types: EventTypes
    secret: Secret | None = None
    headers: Headers = msgspec.field(default_factory=dict)
    enabled: bool = True
    description: Description | None = None


class OutgoingWebhookUpdate(Input):
    url: Url | msgspec.UnsetType = msgspec.UNSET
    event_types: EventTypes | msgspec.UnsetType = msgspec.UNSET
    secret: Secret | msgspec.UnsetType = msgspec.UNSET
    """A new signing secret, used from the next attempt on."""
    headers: Headers | msgspec.UnsetType = msgspec.UNSET
    """Replaces the custom headers; a value of "(hidden)" keeps that header's saved value."""
    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    """true re-enables an endpoint and clears its failure record."""
    description: Description | msgspec.UnsetType | None = msgspec.UNSET


class OutgoingWebhookList(Schema):
    outgoing_webhooks: list[OutgoingWebhook]
    next_cursor: str | None
    total: int


class EventTypeInfo(Schema):
    name: str
    description: str
    example: dict[str, Any]
    """An example of the `data` member of a delivery of this type."""


class EventTypeCatalog(Schema):
    event_types: list[EventTypeInfo]
    envelope: dict[str, Any]
    """The body every delivery has, with `data` as in each event type's example."""


class WebhookDelivery(Schema):
    """One attempt to deliver one event to an endpoint (or a test send)."""

    id: UUID
    delivery_id: UUID | None
    """The same on every attempt of one event (the X-OmniStream-Delivery header); None for a test."""
    event_id: UUID
    event_type: str
    attempt: int
    is_test: bool
    succeeded: bool
    status_code: int | None
    error: str | None
    """Why no answer came (a timeout, a refused connection, a refused target)."""
    duration_ms: int
    request_headers: dict[str, str]
    request_body: str
    response_body: str | None
    """The start of the receiver's answer (at most 4 KB)."""
    next_attempt_at: datetime | None
    """When the next attempt of a failed one is due; None when none follows."""
    created_at: datetime


class WebhookDeliveryList(Schema):
    deliveries: list[WebhookDelivery]
    next_cursor: str | None
    total: int


class WebhookTest(Input):
    event_type: EventTypeName | None = None
    """Which event's example to send; the endpoint's first event type when not given."""
