"""Channel adapters: one per channel, each parsing inbound payloads and sending outbound messages.

An adapter is registered by the integrations that connect a channel; a channel with no
adapter (no integration connected) fails its outbound messages with `channel_not_connected`.
"""

from __future__ import annotations

from typing import Any, Protocol
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
