"""The Messenger and Instagram Send API: POST /{page or Instagram account id}/messages with the
page access token, to the contact's page-scoped (PSID) or Instagram-scoped (IGSID) id."""

from __future__ import annotations

from typing import Any

import structlog

from omnistream.channels import DeliveryError, OutboundMessage, SendResult
from omnistream.channels.delivery.common import (
    graph_failure,
    invalid_content,
    location_of,
    location_text,
    media_of,
    unsupported,
)
from omnistream.channels.graph import GraphClient, GraphError
from omnistream.integrations.service import ProviderAccount

log = structlog.get_logger(__name__)

ATTACHMENT_TYPES = {"image": "image", "sticker": "image", "audio": "audio", "video": "video", "document": "file"}
MAX_QUICK_REPLIES = 13


def message_bodies(message: OutboundMessage) -> list[dict[str, Any]]:
    """The Send API's `message` objects for one of our messages: one, or an attachment and then its
    caption (an attachment carries no text of its own)."""
    kind = message.type
    if kind == "text" or kind == "interactive":
        if not message.text:
            raise invalid_content(message, "text")
        return [{"text": message.text}]
    if kind in ATTACHMENT_TYPES:
        media = media_of(message)
        if not media.get("url"):
            raise invalid_content(message, "media url")
        attachment = {"type": ATTACHMENT_TYPES[kind], "payload": {"url": media["url"], "is_reusable": True}}
        bodies: list[dict[str, Any]] = [{"attachment": attachment}]
        if message.text:
            bodies.append({"text": message.text})
        return bodies
    if kind == "location":  # the Send API sends no locations: the place as text, with a map link
        return [{"text": location_text(location_of(message))}]
    raise unsupported(message)


def request_bodies(message: OutboundMessage) -> list[dict[str, Any]]:
    bodies = message_bodies(message)
    quick_replies = message.content.get("quick_replies")
    if isinstance(quick_replies, list) and quick_replies:
        # Buttons under the last bubble, where the customer answers.
        bodies[-1]["quick_replies"] = quick_replies[:MAX_QUICK_REPLIES]
    return [{"recipient": {"id": message.recipient}, "messaging_type": "RESPONSE", "message": body} for body in bodies]


async def send(graph: GraphClient, account: ProviderAccount, message: OutboundMessage) -> SendResult:
    first, *rest = request_bodies(message)
    path = f"{account.external_id}/messages"
    try:
        answer = await graph.request("POST", path, token=account.access_token, json=first)
    except GraphError as error:
        raise graph_failure(error) from error
    message_id = answer.get("message_id")
    if not message_id:
        raise DeliveryError("invalid_response", "the Send API accepted the message without an id", retryable=False)
    for body in rest:
        # The attachment went out: trying the whole message again would send it twice, so a caption
        # that fails is only logged.
        try:
            await graph.request("POST", path, token=account.access_token, json=body)
        except GraphError as error:
            log.warning("caption not sent", message_id=str(message.message_id), error=error.text)
    return SendResult(provider_message_id=str(message_id))
