"""Channel adapters: one per channel, each parsing inbound payloads and sending outbound messages.

An adapter is registered by the integrations that connect a channel; a channel with no
adapter (no integration connected) fails its outbound messages with `channel_not_connected`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Protocol
from uuid import UUID

from msgspec import Struct


class OutboundMessage(Struct, frozen=True):
    tenant_id: UUID
    message_id: UUID
    conversation_id: UUID
    contact_id: UUID
    account_id: UUID | None
    channel: str
    type: str
    text: str | None
    content: dict[str, Any]


class SendResult(Struct, frozen=True):
    provider_message_id: str


class StatusUpdate(Struct, frozen=True, kw_only=True):
    """What a provider's status webhook says about a message it was given to send."""

    provider_message_id: str
    status: Literal["sent", "delivered", "read", "failed"]
    occurred_at: datetime
    error_code: str | None = None
    error_message: str | None = None


class DeliveryError(Exception):
    """A send the provider refused. `retryable` failures are tried again with backoff."""

    def __init__(self, code: str, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable


class ChannelAdapter(Protocol):
    async def send(self, message: OutboundMessage) -> SendResult: ...


ADAPTERS: dict[str, ChannelAdapter] = {}


def adapter_for(channel: str) -> ChannelAdapter | None:
    return ADAPTERS.get(channel)
