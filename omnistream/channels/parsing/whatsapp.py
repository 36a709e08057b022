"""The WhatsApp Cloud API's webhooks: `object=whatsapp_business_account`, with each
`entry[].changes[].value` naming its phone number in `metadata.phone_number_id`."""

from __future__ import annotations

from typing import Any

from omnistream.channels import StatusUpdate
from omnistream.channels.parsing import (
    Parsed,
    ParsedAccountEvent,
    ParsedMessage,
    ParsedStatus,
    Skipped,
    identifier,
    items,
    mapping,
    moment,
    text_of,
)

CHANNEL = "whatsapp"
MEDIA_TYPES = ("image", "audio", "video", "document", "sticker")
# "played" (a voice message was listened to) is read, for our statuses.
STATUSES = {"sent": "sent", "delivered": "delivered", "read": "read", "played": "read", "failed": "failed"}
# Changes about the business account, by field, kept for the account (no phone number in them).
ACCOUNT_FIELDS = frozenset(
    {
        "message_template_status_update",
        "message_template_quality_update",
        "message_template_components_update",
        "template_category_update",
        "phone_number_quality_update",
        "phone_number_name_update",
        "account_update",
        "account_review_update",
        "business_capability_update",
    }
)


def parse(body: Any) -> list[Parsed]:
    parsed: list[Parsed] = []
    for entry in items(mapping(body).get("entry")):
        entry = mapping(entry)
        for change in items(entry.get("changes")):
            try:
                parsed.extend(_change(mapping(entry), mapping(change)))
            except Exception as exc:  # a parser never fails a delivery; the item is skipped with its reason
                parsed.append(Skipped(reason=f"unreadable change: {type(exc).__name__}", raw=change))
    return parsed


def _change(entry: dict[str, Any], change: dict[str, Any]) -> list[Parsed]:
    field = change.get("field") if isinstance(change.get("field"), str) else None
    value = mapping(change.get("value"))
    if field in ACCOUNT_FIELDS:
        account = identifier(entry.get("id"))
        if account is None:
            return [Skipped(reason="an account change without the business account's id", raw=change)]
        return [ParsedAccountEvent(account_ref=account, channel=CHANNEL, kind=str(field), data=value)]
    if field != "messages":
        return [Skipped(reason=f"field {field!r} is not handled", raw=change)]
    phone_number_id = identifier(mapping(value.get("metadata")).get("phone_number_id"))
    if phone_number_id is None:
        return [Skipped(reason="a messages change without metadata.phone_number_id", raw=change)]
    names = {
        identifier(c.get("wa_id")): text_of(mapping(c.get("profile")).get("name"))
        for c in map(mapping, items(value.get("contacts")))
    }
    parsed: list[Parsed] = [_message(phone_number_id, mapping(m), names) for m in items(value.get("messages"))]
    parsed += [_status(phone_number_id, mapping(s)) for s in items(value.get("statuses"))]
    for error in items(value.get("errors")):
        parsed.append(Skipped(reason="an error Meta reported for the number", raw=error))
    return parsed


def _message(phone_number_id: str, message: dict[str, Any], names: dict[str | None, str | None]) -> Parsed:
    sender = identifier(message.get("from"))
    message_id = identifier(message.get("id"))
    if sender is None or message_id is None:
        return Skipped(reason="a message without from or id", raw=message)
    kind = message.get("type") if isinstance(message.get("type"), str) else "unknown"
    content: dict[str, Any] = {"raw": message}
    for key in ("context", "referral", "identity"):
        if isinstance(message.get(key), dict):
            content[key] = message[key]
    text, message_type, media_ref = _body(kind, message, content)
    return ParsedMessage(
        account_ref=phone_number_id,
        channel=CHANNEL,
        external_id=sender,
        provider_message_id=message_id,
        type=message_type,
        text=text,
        content=content,
        contact_name=names.get(sender),
        contact_phone=f"+{sender}" if sender.isdigit() else None,
        sent_at=moment(message.get("timestamp")),
        media_ref=media_ref,
    )


def _body(kind: str, message: dict[str, Any], content: dict[str, Any]) -> tuple[str | None, str, str | None]:
    """The text, our message type and the media to fetch, for each kind WhatsApp sends."""
    part = mapping(message.get(kind))
    if kind == "text":
        return text_of(part.get("body")), "text", None
    if kind in MEDIA_TYPES:
        media = {
            key: part[key]
            for key in ("id", "mime_type", "sha256", "filename", "voice", "animated", "url")
            if key in part
        }
        content["media"] = media
        return text_of(part.get("caption")), kind, identifier(part.get("id"))
    if kind == "location":
        content["location"] = {
            key: part[key] for key in ("latitude", "longitude", "name", "address", "url") if key in part
        }
        return text_of(part.get("name")) or text_of(part.get("address")), "location", None
    if kind == "contacts":
        cards = items(message.get("contacts"))
        content["contacts"] = cards
        names = [text_of(mapping(mapping(card).get("name")).get("formatted_name")) for card in cards]
        return ", ".join(n for n in names if n) or None, "contacts", None
    if kind == "interactive":
        reply_kind = part.get("type")
        reply = mapping(part.get(reply_kind)) if isinstance(reply_kind, str) else {}
        content["interactive"] = {"type": reply_kind, **reply}
        return text_of(reply.get("title")) or text_of(reply.get("body")), "interactive", None
    if kind == "button":
        content["button"] = part
        return text_of(part.get("text")), "interactive", None
    if kind == "reaction":
        content["reaction"] = {"message_id": part.get("message_id"), "emoji": part.get("emoji")}
        return text_of(part.get("emoji")), "reaction", None
    if kind == "order":
        content["order"] = part
        count = len(items(part.get("product_items")))
        return text_of(part.get("text")) or f"[order of {count} item{'s' * (count != 1)}]", "system", None
    if kind == "system":
        content["system"] = part
        return text_of(part.get("body")), "system", None
    # unsupported, deleted, and kinds of later API versions: kept, raw, as a system message.
    errors = items(message.get("errors"))
    content["kind"] = kind
    if errors:
        content["errors"] = errors
    detail = text_of(mapping(errors[0]).get("title")) if errors else None
    return detail or f"[{kind} message]", "system", None


def _status(phone_number_id: str, status: dict[str, Any]) -> Parsed:
    message_id = identifier(status.get("id"))
    reported = status.get("status")
    ours = STATUSES.get(reported) if isinstance(reported, str) else None
    occurred = moment(status.get("timestamp"))
    if message_id is None or ours is None or occurred is None:
        return Skipped(reason=f"a status {status.get('status')!r} that is not handled", raw=status)
    error = mapping(next(iter(items(status.get("errors"))), None))
    details = text_of(mapping(error.get("error_data")).get("details"))
    title = text_of(error.get("message")) or text_of(error.get("title"))
    return ParsedStatus(
        account_ref=phone_number_id,
        channel=CHANNEL,
        update=StatusUpdate(
            provider_message_id=message_id,
            status=ours,  # type: ignore[arg-type]
            occurred_at=occurred,
            error_code=identifier(error.get("code")) if error else None,
            error_message=(f"{title}: {details}" if title and details else title or details) if error else None,
        ),
    )
