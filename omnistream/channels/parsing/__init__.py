"""Parsers of what providers' webhooks deliver: Meta's WhatsApp Cloud API, Messenger and
Instagram bodies, and the email webhook. Each takes the decoded JSON and returns the items it
found, each naming the provider account it arrived for; no tenant is known yet.

A parser never raises: an item it cannot read becomes a `Skipped` naming why, and fields it does
not know are kept in the item's `raw`, so a new field or message type of a new API version never
fails a delivery.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from msgspec import Struct

from omnistream.channels import StatusUpdate


class ParsedMessage(Struct, frozen=True, kw_only=True):
    """A customer's message, for `messages.service.ingest_inbound_many` once routed to its tenant."""

    account_ref: str
    channel: str
    external_id: str
    provider_message_id: str
    type: str
    text: str | None = None
    content: dict[str, Any] = {}
    contact_name: str | None = None
    contact_phone: str | None = None
    contact_email: str | None = None
    sent_at: datetime | None = None
    media_ref: str | None = None
    """The media to fetch: a WhatsApp media id (through the Graph API) or an attachment URL."""


class ParsedStatus(Struct, frozen=True, kw_only=True):
    account_ref: str
    channel: str
    update: StatusUpdate


class ParsedAccountEvent(Struct, frozen=True, kw_only=True):
    """News about the account itself: a template's review, a phone number's quality rating, ..."""

    account_ref: str
    channel: str
    kind: str
    data: dict[str, Any]


class Skipped(Struct, frozen=True, kw_only=True):
    reason: str
    raw: Any = None


Parsed = ParsedMessage | ParsedStatus | ParsedAccountEvent | Skipped


def moment(value: Any) -> datetime | None:
    """A provider's timestamp: Unix seconds or milliseconds (number or string), or ISO 8601."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            value = int(text)
        else:
            try:
                parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                return None
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        seconds = value / 1000 if value > 10**11 else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def text_of(value: Any, limit: int = 65536) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def identifier(value: Any) -> str | None:
    """An id as providers write them: a string, or (older payloads) a number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()[:256]
    return None
