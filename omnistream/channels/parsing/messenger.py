"""Messenger (`object=page`) and Instagram (`object=instagram`) webhooks: `entry[].messaging[]`
(or `standby[]`, for an app that is not the thread's owner), each event naming the page or the
Instagram account in `entry.id` and the customer in `sender.id`."""

from __future__ import annotations

from typing import Any

from omnistream.channels import StatusUpdate
from omnistream.channels.parsing import (
    Parsed,
    ParsedMessage,
    ParsedStatus,
    Skipped,
    identifier,
    items,
    mapping,
    moment,
    text_of,
)

CHANNELS = {"page": "messenger", "instagram": "instagram"}
ATTACHMENT_TYPES = {"image": "image", "video": "video", "audio": "audio", "file": "document"}


def parse(body: Any) -> list[Parsed]:
    body = mapping(body)
    kind = body.get("object")
    channel = CHANNELS.get(kind) if isinstance(kind, str) else None
    if channel is None:
        return [Skipped(reason=f"object {body.get('object')!r} is not a Messenger or Instagram webhook", raw=body)]
    parsed: list[Parsed] = []
    for entry in map(mapping, items(body.get("entry"))):
        account = identifier(entry.get("id"))
        events = [*items(entry.get("messaging")), *items(entry.get("standby"))]
        # Instagram's dashboard test sends a DM as a change of field "messages".
        events += [
            mapping(c).get("value") for c in items(entry.get("changes")) if mapping(c).get("field") == "messages"
        ]
        for event in map(mapping, events):
            try:
                parsed.extend(_event(channel, account, event))
            except Exception as exc:  # a parser never fails a delivery; the item is skipped with its reason
                parsed.append(Skipped(reason=f"unreadable event: {type(exc).__name__}", raw=event))
        for change in items(entry.get("changes")):
            if mapping(change).get("field") != "messages":
                parsed.append(Skipped(reason=f"field {mapping(change).get('field')!r} is not handled", raw=change))
    return parsed


def _event(channel: str, entry_account: str | None, event: dict[str, Any]) -> list[Parsed]:
    sender = identifier(mapping(event.get("sender")).get("id"))
    recipient = identifier(mapping(event.get("recipient")).get("id"))
    account = entry_account or recipient
    at = moment(event.get("timestamp"))
    if sender is None or account is None:
        return [Skipped(reason="an event without sender or account", raw=event)]
    if isinstance(event.get("delivery"), dict) or isinstance(event.get("read"), dict):
        return _receipt(channel, account, event, at)
    message = event.get("message")
    if isinstance(message, dict):
        if message.get("is_echo"):
            # What the page itself sent (through us or Meta's inbox): not a customer's message.
            return [Skipped(reason="an echo of the page's own message", raw=event)]
        return [_message(channel, account, sender, message, event, at)]
    if isinstance(event.get("postback"), dict):
        postback = event["postback"]
        provider_id = identifier(postback.get("mid")) or f"postback:{sender}:{event.get('timestamp')}"
        content = {"raw": event, "postback": {k: postback.get(k) for k in ("title", "payload") if k in postback}}
        if isinstance(postback.get("referral"), dict):
            content["referral"] = postback["referral"]
        return [
            _customer(channel, account, sender, provider_id, "interactive", text_of(postback.get("title")), content, at)
        ]
    if isinstance(event.get("reaction"), dict):
        reaction = event["reaction"]
        target = identifier(reaction.get("mid"))
        emoji = text_of(reaction.get("emoji")) or text_of(reaction.get("reaction"))
        content = {
            "raw": event,
            "reaction": {
                "message_id": target,
                "action": reaction.get("action"),
                "emoji": emoji,
                "reaction": reaction.get("reaction"),
            },
        }
        provider_id = f"reaction:{target}:{sender}:{event.get('timestamp')}"
        text = emoji if reaction.get("action") != "unreact" else None
        return [_customer(channel, account, sender, provider_id, "reaction", text, content, at)]
    if isinstance(event.get("referral"), dict):
        provider_id = f"referral:{sender}:{event.get('timestamp')}"
        content = {"raw": event, "referral": event["referral"]}
        return [_customer(channel, account, sender, provider_id, "system", "[referral]", content, at)]
    return [Skipped(reason="an event of a kind not handled", raw=event)]


def _message(
    channel: str, account: str, sender: str, message: dict[str, Any], event: dict[str, Any], at: Any
) -> Parsed:
    mid = identifier(message.get("mid"))
    if mid is None:
        return Skipped(reason="a message without mid", raw=event)
    content: dict[str, Any] = {"raw": event}
    for key in ("reply_to", "quick_reply", "referral"):
        if isinstance(message.get(key), dict):
            content[key] = message[key]
    text = text_of(message.get("text"))
    if message.get("is_deleted"):
        content["kind"] = "deleted"
        return _customer(channel, account, sender, f"deleted:{mid}", "system", "[message deleted]", content, at)
    attachments = [mapping(a) for a in items(message.get("attachments"))]
    message_type = "interactive" if "quick_reply" in content else "text"
    if attachments:
        content["attachments"] = attachments
        first = attachments[0]
        payload = mapping(first.get("payload"))
        kind = first.get("type")
        if kind in ATTACHMENT_TYPES:
            message_type = "sticker" if payload.get("sticker_id") else ATTACHMENT_TYPES[kind]  # type: ignore[index]
            content["media"] = {"url": payload.get("url"), "sticker_id": payload.get("sticker_id")}
        elif kind == "location":
            coordinates = mapping(payload.get("coordinates"))
            content["location"] = {
                "latitude": coordinates.get("lat"),
                "longitude": coordinates.get("long"),
                "name": first.get("title"),
                "url": first.get("url"),
            }
            message_type, text = "location", text or text_of(first.get("title"))
        else:
            # story_mention, share, ig_reel, reel, fallback, template, like_heart, and what comes next.
            content["kind"] = kind
            text = text or text_of(first.get("title")) or f"[{kind}]"
    elif text is None and message.get("is_unsupported"):
        content["kind"] = "unsupported"
        message_type, text = "system", "[unsupported message]"
    elif text is None:
        content["kind"] = "empty"
        message_type, text = "system", "[message]"
    return _customer(channel, account, sender, mid, message_type, text, content, at)


def _customer(
    channel: str,
    account: str,
    sender: str,
    provider_id: str,
    message_type: str,
    text: str | None,
    content: dict[str, Any],
    at: Any,
) -> ParsedMessage:
    return ParsedMessage(
        account_ref=account,
        channel=channel,
        external_id=sender,
        provider_message_id=provider_id,
        type=message_type,
        text=text,
        content=content,
        sent_at=at,
        media_ref=None
        if message_type not in ("image", "video", "audio", "document", "sticker")
        else text_of(mapping(content.get("media")).get("url"), 4096),
    )


def _receipt(channel: str, account: str, event: dict[str, Any], at: Any) -> list[Parsed]:
    """Delivery receipts name the messages they cover (`mids`), an Instagram read its `mid`. A
    Messenger read names only a watermark, which moves no message of ours: skipped."""
    delivery, read = mapping(event.get("delivery")), mapping(event.get("read"))
    status = "delivered" if delivery else "read"
    mids = [identifier(m) for m in items(delivery.get("mids"))] if delivery else [identifier(read.get("mid"))]
    occurred = at or moment(delivery.get("watermark") or read.get("watermark"))
    if not any(mids) or occurred is None:
        return [Skipped(reason=f"a {status} receipt without message ids", raw=event)]
    return [
        ParsedStatus(
            account_ref=account,
            channel=channel,
            update=StatusUpdate(provider_message_id=mid, status=status, occurred_at=occurred),  # type: ignore[arg-type]
        )
        for mid in mids
        if mid
    ]
