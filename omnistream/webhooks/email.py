"""The inbound email webhook: an email a mailbox received, posted as JSON by a mail provider,
verified with the mailbox's own secret and queued like Meta's items."""

from __future__ import annotations

import base64
import binascii
import time
from email.utils import parseaddr
from typing import Any

import msgspec
import structlog
from redis.asyncio import Redis

from omnistream.channels.parsing import ParsedMessage
from omnistream.config import Settings
from omnistream.db import Database
from omnistream.errors import BadRequest, PayloadTooLarge, Unauthorized, Unprocessable
from omnistream.integrations import service as integrations
from omnistream.messages import service as messages
from omnistream.webhooks import inbox
from omnistream.webhooks.inbox import QueuedDelivery, RoutedMessage
from omnistream.webhooks.schemas import InboundEmail, WebhookReceipt
from omnistream.webhooks.service import signature_of, signed_with

log = structlog.get_logger(__name__)

SIGNATURE_HEADER = "X-OmniStream-Signature"


def address_of(value: str) -> str:
    return parseaddr(value)[1].strip().lower()


def message_id_of(value: str | None) -> str | None:
    """A Message-ID as headers quote it, `<local@domain>`: the form replies name it by."""
    text = (value or "").strip()
    if not text:
        return None
    return text if text.startswith("<") and text.endswith(">") else f"<{text.strip('<>')}>"


def decode(raw: bytes) -> InboundEmail:
    """The email, once the body is known to be whole JSON (a truncated body is "not JSON", not a
    schema error about the last field it got to)."""
    try:
        document = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from exc
    try:
        return msgspec.convert(document, InboundEmail)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"the email does not match the schema: {exc}") from exc


async def receive(
    db: Database, redis: Redis, settings: Settings, raw: bytes, signature_header: str | None
) -> WebhookReceipt:
    signature = signature_of(signature_header, SIGNATURE_HEADER)
    email = decode(raw)
    sender = address_of(email.from_)
    if "@" not in sender:
        raise Unprocessable("from must name the sender's address", field="from")
    recipients = [address_of(a) for a in [*email.to, *email.cc]]
    routes = await integrations.route_accounts(db, settings, "email", [r for r in recipients if r])
    route = next(
        (
            r
            for r in sorted(routes, key=lambda r: recipients.index(r.external_id))
            if r.account_secret and signed_with(r.account_secret, raw, signature)
        ),
        None,
    )
    if route is None:
        if not routes:
            log.warning("email for a mailbox no organisation has connected", to=recipients[:5])
            return WebhookReceipt(received=1, queued=0, ignored=1)
        raise Unauthorized("the X-OmniStream-Signature does not match the body signed with the mailbox's secret")
    if not route.active:
        return WebhookReceipt(received=1, queued=0, ignored=1)
    attachments = [await _store(db, settings, route.tenant_id, index, a) for index, a in enumerate(email.attachments)]
    answered = [m for m in (message_id_of(email.in_reply_to), *map(message_id_of, email.references)) if m]
    thread_contact = await messages.email_thread_identity(db, route.tenant_id, answered)
    message = ParsedMessage(
        account_ref=route.external_id,
        channel="email",
        external_id=thread_contact or sender,
        provider_message_id=message_id_of(email.message_id) or email.message_id.strip(),
        type="document" if attachments and not (email.text or email.html) else "text",
        text=(email.text or _text_of_html(email.html) or email.subject or "(no text)")[:65536],
        content={
            "email": {
                "from": email.from_,
                "subject": email.subject,
                "message_id": message_id_of(email.message_id),
                "in_reply_to": email.in_reply_to,
                "references": email.references,
                "to": email.to,
                "cc": email.cc,
                "html": email.html,
            },
            "attachments": attachments,
        },
        contact_name=None if thread_contact else parseaddr(email.from_)[0] or None,
        contact_email=thread_contact or sender,
    )
    delivery = QueuedDelivery(
        tenant_id=route.tenant_id, received_at=time.time(), messages=[RoutedMessage(route.account_id, message)]
    )
    await inbox.put(redis, settings.redis_prefix, [delivery])
    return WebhookReceipt(received=1, queued=1, ignored=0)


async def _store(db: Database, settings: Settings, tenant_id: Any, index: int, attachment: Any) -> dict[str, Any]:
    try:
        data = base64.b64decode(attachment.content, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f"attachments[{index}].content is not base64") from exc
    if len(data) > settings.media_max_bytes:
        raise PayloadTooLarge(f"attachments[{index}] is larger than {settings.media_max_bytes} bytes")
    from omnistream.media import service as media

    media_id = await media.store_inbound(db, settings, tenant_id, data, attachment.content_type, attachment.filename)
    return {
        "media_id": str(media_id),
        "filename": attachment.filename,
        "mime_type": attachment.content_type,
        "size_bytes": len(data),
    }


def _text_of_html(html: str | None) -> str | None:
    if not html:
        return None
    from html.parser import HTMLParser

    class _Text(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.parts: list[str] = []
            self._skip = 0

        def handle_starttag(self, tag: str, attrs: Any) -> None:
            self._skip += tag in ("style", "script")

        def handle_endtag(self, tag: str) -> None:
            self._skip -= tag in ("style", "script") and self._skip > 0

        def handle_data(self, data: str) -> None:
            if not self._skip:
                self.parts.append(data)

    parser = _Text()
    parser.feed(html)
    return " ".join(" ".join(parser.parts).split()) or None
