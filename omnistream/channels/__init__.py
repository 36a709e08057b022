"""Channels: what parses providers' inbound payloads (`parsing`) and what sends outbound messages
(`delivery`, one sender per channel, through the conversation's integration account) share.

A message whose channel has no connected account fails with `channel_not_connected`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
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
    recipient: str | None = None
    """The contact's address on the channel: WhatsApp number, page-scoped or Instagram-scoped id, email."""
    answering: dict[str, Any] | None = None
    """Email: the `email` content of the contact's latest email in the conversation (threading)."""


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

    def __init__(self, code: str, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        """Seconds the provider asked to wait before the next try."""
