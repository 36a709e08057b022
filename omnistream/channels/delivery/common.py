"""What the Meta senders share: a Graph error read as a delivery failure, and the message's media."""

from __future__ import annotations

from typing import Any

from omnistream.channels import DeliveryError, OutboundMessage
from omnistream.channels.graph import GraphError


def graph_failure(error: GraphError) -> DeliveryError:
    """Meta's refusal as the message stores it: Meta's code ("131047") and text; throttling (130429,
    429), server errors and timeouts are tried again, the rest (100, 131047, 190, ...) is final."""
    return DeliveryError(error.error_code, error.text, retryable=error.retryable, retry_after=error.retry_after)


def invalid_content(message: OutboundMessage, missing: str) -> DeliveryError:
    return DeliveryError("invalid_content", f"the {message.type} message has no {missing} to send", retryable=False)


def unsupported(message: OutboundMessage) -> DeliveryError:
    return DeliveryError(
        "unsupported_message_type",
        f"{message.channel} cannot send a {message.type} message",
        retryable=False,
    )


def media_of(message: OutboundMessage) -> dict[str, Any]:
    media = message.content.get("media")
    if not isinstance(media, dict) or not (media.get("url") or media.get("id")):
        raise invalid_content(message, "media (url or id)")
    return media


def location_of(message: OutboundMessage) -> dict[str, Any]:
    location = message.content.get("location")
    if not isinstance(location, dict) or "latitude" not in location or "longitude" not in location:
        raise invalid_content(message, "location")
    return location


def location_text(location: dict[str, Any]) -> str:
    """A place as text, for channels that cannot send a location: its name, address and a map link."""
    lines = [str(location[key]) for key in ("name", "address") if location.get(key)]
    lines.append(f"https://maps.google.com/?q={location['latitude']},{location['longitude']}")
    return "\n".join(lines)
