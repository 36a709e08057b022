"""Outbound delivery: one sender per channel, through the conversation's integration account.

`send` raises DeliveryError with the provider's code and text; `retryable` ones (throttling, server
errors, timeouts) are tried again by the delivery job.
"""

from __future__ import annotations

import httpx

from omnistream.channels import DeliveryError, OutboundMessage, SendResult
from omnistream.channels.delivery import email, meta_pages, whatsapp
from omnistream.channels.graph import GraphClient
from omnistream.config import Settings
from omnistream.integrations.service import ProviderAccount

META_CHANNELS = frozenset({"whatsapp", "messenger", "instagram"})


def send_budget(settings: Settings) -> float:
    """The longest one send may take: a Messenger attachment and its caption are two requests."""
    return 2 * max(settings.graph_api_timeout_seconds, settings.smtp_timeout_seconds) + 5


async def send(
    settings: Settings, account: ProviderAccount, message: OutboundMessage, http: httpx.AsyncClient | None = None
) -> SendResult:
    """Send through the account; `http` is the worker's shared Graph API client (one of its own
    otherwise)."""
    if not message.recipient:
        raise DeliveryError("no_recipient", f"the contact has no {message.channel} address to send to", retryable=False)
    if message.channel == "email":
        return await email.send(settings, account, message)
    if message.channel not in META_CHANNELS:
        raise DeliveryError("unsupported_channel", f"no sender for the {message.channel} channel", retryable=False)
    if not account.access_token:
        raise DeliveryError(
            "missing_access_token",
            f"the {message.channel} account {account.external_id} has no access token",
            retryable=False,
        )
    async with GraphClient(settings, http) as graph:
        if message.channel == "whatsapp":
            return await whatsapp.send(graph, account, message)
        return await meta_pages.send(graph, account, message)
