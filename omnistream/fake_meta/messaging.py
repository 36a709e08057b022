"""Sending: the WhatsApp Cloud API's messages, the Messenger and Instagram Send API, and media."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from typing import Any

import httpx
import msgspec
from litestar import Request, Response, get, post

from omnistream.fake_meta.state import STATE

_tasks: set[asyncio.Task[None]] = set()


@post("/{version:str}/{phone_number_id:str}/messages", status_code=200)
async def whatsapp_send(version: str, phone_number_id: str, request: Request[Any, Any, Any]) -> Response[Any]:
    raw = await request.body()
    try:
        body = msgspec.json.decode(raw) if raw else {}
    except msgspec.DecodeError:
        return _invalid("the body is not JSON")
    if not isinstance(body, dict):
        return _invalid("the body must be an object")
    if "recipient" in body:  # the Messenger and Instagram Send API, to /{page or account id}/messages
        return await _page_send(phone_number_id, body)
    if body.get("messaging_product") != "whatsapp":
        return _invalid("messaging_product must be whatsapp")
    to = str(body.get("to", ""))
    if not to or body.get("type") not in (
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
    ):
        return _invalid("to and a known type are required")
    if not isinstance(body.get(body["type"]), (dict, list)):
        return _invalid(f"the {body['type']} object is required")  # Meta: (#100) Invalid parameter
    message_id = f"wamid.HBgL{STATE.next_id():012d}FAKE"
    if STATE.config.webhook_url:
        task = asyncio.create_task(_send_statuses(phone_number_id, to, message_id))
        _tasks.add(task)
        task.add_done_callback(_tasks.discard)
    return Response(
        {
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": to}],
            "messages": [{"id": message_id, "message_status": "accepted"}],
        }
    )


async def _page_send(page_id: str, body: dict[str, Any]) -> Response[Any]:
    recipient = (body.get("recipient") or {}).get("id")
    if not recipient or not (body.get("message") or body.get("sender_action")):
        return _invalid("recipient.id and message are required")
    if body.get("message") and body.get("messaging_type") not in ("RESPONSE", "UPDATE", "MESSAGE_TAG"):
        return _invalid("messaging_type must be RESPONSE, UPDATE or MESSAGE_TAG")
    return Response({"recipient_id": recipient, "message_id": f"m_FAKE{STATE.next_id():012d}"})


def _invalid(details: str) -> Response[Any]:
    return Response(
        {
            "error": {
                "message": "(#100) Invalid parameter",
                "type": "OAuthException",
                "code": 100,
                "error_data": {"messaging_product": "whatsapp", "details": details},
                "fbtrace_id": f"A{STATE.next_id():010d}",
            }
        },
        status_code=400,
    )


async def _send_statuses(phone_number_id: str, to: str, message_id: str) -> None:
    """Meta's status webhooks for a sent message, one after another."""
    for status in STATE.config.statuses:
        await asyncio.sleep(STATE.config.status_delay_seconds)
        pricing = {"billable": True, "pricing_model": "PMP", "category": "service", "type": "free_customer_service"}
        receipt = {
            "id": message_id,
            "status": status,
            "timestamp": str(int(time.time())),
            "recipient_id": to,
            "pricing": pricing,
        }
        await _post_webhook(phone_number_id, {"statuses": [receipt]})


async def _post_webhook(phone_number_id: str, change: dict[str, Any]) -> int | None:
    """A WhatsApp webhook for the number to the configured URL, signed with the configured app
    secret as Meta signs it; the answer's status (None when nothing answered)."""
    config = STATE.config
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550000000", "phone_number_id": phone_number_id},
        **change,
    }
    body = msgspec.json.encode(
        {
            "object": "whatsapp_business_account",
            "entry": [{"id": "100000000000000", "changes": [{"value": value, "field": "messages"}]}],
        }
    )
    signature = hmac.new(config.app_secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={signature}"}
    async with httpx.AsyncClient(timeout=10) as client:
        try:
            return (await client.post(config.webhook_url, content=body, headers=headers)).status_code
        except httpx.HTTPError:
            return None


class CustomerMessage(msgspec.Struct, kw_only=True):
    phone_number_id: str
    """The business's number the customer writes to (the integration account's external id)."""
    text: str
    sender: str = msgspec.field(name="from", default="15551230000")
    name: str = "Test Customer"


@post("/_stand-in/customer-message", status_code=200)
async def customer_message(data: CustomerMessage) -> Response[Any]:
    """A customer writes to the number: the webhook Meta would send, to the configured URL."""
    if not STATE.config.webhook_url:
        return Response({"error": "configure webhook_url first"}, status_code=409)
    message_id = f"wamid.HBgL{STATE.next_id():012d}CUSTOMER"
    message = {
        "from": data.sender,
        "id": message_id,
        "timestamp": str(int(time.time())),
        "type": "text",
        "text": {"body": data.text},
    }
    contacts = [{"profile": {"name": data.name}, "wa_id": data.sender}]
    answered = await _post_webhook(data.phone_number_id, {"contacts": contacts, "messages": [message]})
    return Response({"message_id": message_id, "webhook_status": answered})


def media_info(media_id: str, request: Request[Any, Any, Any]) -> Response[Any]:
    """What GET /{version}/{media id} answers: where to download the media the id names."""
    data, mime_type = STATE.media[media_id]
    base = str(request.base_url).rstrip("/")
    return Response(
        {
            "messaging_product": "whatsapp",
            "url": f"{base}/_media/{media_id}",
            "mime_type": mime_type,
            "sha256": hashlib.sha256(data).hexdigest(),
            "file_size": len(data),
            "id": str(media_id),
        }
    )


@get("/_media/{media_id:str}", status_code=200)
async def media_download(media_id: str, request: Request[Any, Any, Any]) -> Response[Any]:
    held = STATE.media.get(media_id)
    if held is None or not request.headers.get("authorization", "").startswith("Bearer "):
        return Response(b"", status_code=404 if held is None else 401)
    return Response(held[0], media_type=held[1])


ROUTES = [whatsapp_send, media_download, customer_message]
