from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, Router, get, post
from litestar.exceptions import HTTPException
from litestar.params import QueryParameter

from omnistream.errors import PayloadTooLarge
from omnistream.kit.body import is_json
from omnistream.kit.deps import DB, AppSettings, RedisClient
from omnistream.kit.openapi import ERRORS, RAW_BODY
from omnistream.security.guards import PUBLIC
from omnistream.webhooks import email, service
from omnistream.webhooks.schemas import (
    EMAIL_EXAMPLE,
    INSTAGRAM_TEXT_EXAMPLE,
    MESSENGER_TEXT_EXAMPLE,
    WHATSAPP_STATUS_EXAMPLE,
    WHATSAPP_TEXT_EXAMPLE,
    InboundEmail,
    MetaWebhook,
    WebhookReceipt,
)

HubMode = Annotated[str | None, QueryParameter(name="hub.mode", max_length=64)]
HubVerifyToken = Annotated[str | None, QueryParameter(name="hub.verify_token", max_length=512)]
HubChallenge = Annotated[str | None, QueryParameter(name="hub.challenge", max_length=512)]
SIGNED = {**PUBLIC, ERRORS: (401,)}
META_BODY = (
    MetaWebhook,
    {
        "whatsapp_text": WHATSAPP_TEXT_EXAMPLE,
        "whatsapp_status": WHATSAPP_STATUS_EXAMPLE,
        "messenger_text": MESSENGER_TEXT_EXAMPLE,
        "instagram_text": INSTAGRAM_TEXT_EXAMPLE,
    },
)
VERIFY_DESCRIPTION = (
    "Meta's subscription check: answers `hub.challenge` as text when `hub.mode` is `subscribe` and "
    "`hub.verify_token` is the platform's (OMNISTREAM_META_VERIFY_TOKEN) or one an organisation set on its "
    "integration; 403 otherwise."
)
RECEIVE_DESCRIPTION = (
    "Signed with `X-Hub-Signature-256: sha256=<HMAC-SHA256 of the raw body with the app secret>`; a missing or "
    "wrong signature is a 401 and stores nothing. The items are routed by the phone number id, page id or Instagram "
    "account id they name, queued, and ingested by the worker; the answer comes before ingestion. An item for an "
    "account no organisation has connected is logged and ignored (still a 200, so Meta does not retry it)."
)


async def _body(request: Request[Any, Any, Any], limit: int) -> bytes:
    """The raw body (the signature covers these exact bytes), refused past `limit` bytes and when
    it is not sent as JSON."""
    media_type = request.content_type[0]
    if media_type and not is_json(media_type):
        raise HTTPException(
            status_code=415, detail=f"the body must be JSON, sent as application/json, not {media_type}"
        )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


# Meta's three callback URLs: one verification and one receiver each, alike but for the channels
# whose verify tokens the verification accepts (see service.VERIFY_CHANNELS).
META_ENDPOINTS = {
    "meta": ("Meta", "Meta webhook verification", "Receive Meta webhook (WhatsApp + Instagram)"),
    "messenger": (
        "Messenger",
        "Meta webhook verification for Messenger",
        "Receive Messenger inbound webhook events",
    ),
    "instagram": (
        "Instagram",
        "Meta webhook verification for Instagram",
        "Receive Instagram inbound webhook events",
    ),
}


def _meta_handlers(endpoint: str) -> list[Any]:
    name, verify_summary, receive_summary = META_ENDPOINTS[endpoint]

    @get(
        f"/{endpoint}",
        operation_id=f"verify{name}Webhook",
        summary=verify_summary,
        opt={**PUBLIC, ERRORS: (403,)},
        description=VERIFY_DESCRIPTION,
    )
    async def verify(
        db: DB,
        settings: AppSettings,
        mode: HubMode = None,
        token: HubVerifyToken = None,
        challenge: HubChallenge = None,
    ) -> Response[str]:
        answer = await service.verify_subscription(db, settings, endpoint, mode, token, challenge)
        return Response(answer, media_type="text/plain")

    @post(
        f"/{endpoint}",
        operation_id=f"receive{name}Webhook",
        summary=receive_summary,
        status_code=200,
        opt={**SIGNED, RAW_BODY: META_BODY},
        description=RECEIVE_DESCRIPTION,
    )
    async def receive(
        request: Request[Any, Any, Any], db: DB, redis: RedisClient, settings: AppSettings
    ) -> WebhookReceipt:
        raw = await _body(request, settings.webhook_max_body_bytes)
        return await service.receive_meta(
            db, redis, settings, endpoint, raw, request.headers.get("x-hub-signature-256")
        )

    return [verify, receive]


@post(
    "/email",
    operation_id="receiveEmailWebhook",
    summary="Receive inbound email webhook",
    status_code=200,
    opt={**SIGNED, RAW_BODY: (InboundEmail, {"reply": EMAIL_EXAMPLE})},
    description="An email a mailbox received, as a mail provider's inbound webhook posts it (JSON; attachments "
    "base64). Routed by its `to` (and `cc`) address to the mailbox's account, and signed with "
    "`X-OmniStream-Signature: sha256=<hex HMAC-SHA256 of the raw body with the mailbox's webhook secret>`; "
    "a missing or wrong signature is a 401 and stores nothing. A reply (`in_reply_to`, `references`) joins "
    "the conversation of the message it answers.",
)
async def receive_email(
    request: Request[Any, Any, Any], db: DB, redis: RedisClient, settings: AppSettings
) -> WebhookReceipt:
    raw = await _body(request, settings.email_webhook_max_body_bytes)
    return await email.receive(db, redis, settings, raw, request.headers.get("x-omnistream-signature"))


CONTROLLERS = [
    Router(
        path="/api/webhooks",
        tags=["Webhooks"],
        route_handlers=[*(h for endpoint in META_ENDPOINTS for h in _meta_handlers(endpoint)), receive_email],
    )
]
