"""WhatsApp Cloud API: POST /{phone number id}/messages, one request per message."""

from __future__ import annotations

import re
from typing import Any

from omnistream.channels import DeliveryError, OutboundMessage, SendResult
from omnistream.channels.delivery.common import graph_failure, invalid_content, location_of, media_of
from omnistream.channels.graph import GraphClient, GraphError
from omnistream.integrations.service import ProviderAccount

_LINK = re.compile(r"https?://", re.IGNORECASE)
CAPTIONED = frozenset({"image", "video", "document"})
MEDIA = frozenset({"image", "audio", "video", "document", "sticker"})


def request_body(message: OutboundMessage) -> dict[str, Any]:
    """The Cloud API's message object for one of our messages."""
    kind = message.type
    body: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": message.recipient,
        "type": kind,
    }
    if kind == "text":
        if not message.text:
            raise invalid_content(message, "text")
        body["text"] = {"body": message.text}
        if _LINK.search(message.text):
            body["text"]["preview_url"] = True  # Meta renders a link's preview only when asked
    elif kind in MEDIA:
        media = media_of(message)
        # A link Meta fetches, or the id of media uploaded to Meta before.
        payload: dict[str, Any] = {"link": media["url"]} if media.get("url") else {"id": str(media["id"])}
        if kind in CAPTIONED and message.text:
            payload["caption"] = message.text
        if kind == "document" and media.get("filename"):
            payload["filename"] = media["filename"]
        body[kind] = payload
    elif kind == "location":
        location = location_of(message)
        body["location"] = {
            key: location[key] for key in ("latitude", "longitude", "name", "address") if location.get(key) is not None
        }
    elif kind == "template":
        template = message.content.get("template")
        if not isinstance(template, dict) or not template.get("name") or not template.get("language"):
            raise invalid_content(message, "template (name and language)")
        body["template"] = {"name": template["name"], "language": {"code": template["language"]}}
        if template.get("components"):
            body["template"]["components"] = template["components"]
    elif kind in ("interactive", "reaction", "contacts"):
        # Kept in the content in Meta's own shape (buttons or a list; the reacted message and emoji;
        # contact cards), sent as it is.
        value = message.content.get(kind)
        if not value:
            raise invalid_content(message, kind)
        body[kind] = value
    else:
        raise DeliveryError("unsupported_message_type", f"whatsapp cannot send a {kind} message", retryable=False)
    context = message.content.get("context")
    if isinstance(context, dict) and context.get("message_id") and kind != "reaction":
        body["context"] = {"message_id": context["message_id"]}  # a reply quoting the customer's message
    return body


async def send(graph: GraphClient, account: ProviderAccount, message: OutboundMessage) -> SendResult:
    body = request_body(message)
    try:
        answer = await graph.request("POST", f"{account.external_id}/messages", token=account.access_token, json=body)
    except GraphError as error:
        raise graph_failure(error) from error
    sent = answer.get("messages")
    if not isinstance(sent, list) or not sent or not isinstance(sent[0], dict) or not sent[0].get("id"):
        # Accepted without an id: it may well go out, so it is not sent again.
        raise DeliveryError("invalid_response", "the Cloud API accepted the message without an id", retryable=False)
    return SendResult(provider_message_id=str(sent[0]["id"]))
