"""Messages: ingestion of what customers send, sending replies, history and search."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, get_args
from uuid import UUID

import asyncpg
import msgspec
import structlog
from arq import ArqRedis

from omnistream.activity import service as activity
from omnistream.automation.service import Outbox
from omnistream.channels import StatusUpdate
from omnistream.contacts.schemas import Channel
from omnistream.conversations import service as conversations
from omnistream.db import Database
from omnistream.errors import Conflict, Unprocessable
from omnistream.kit.pagination import ListParams, date_range, page_of
from omnistream.messages import repository
from omnistream.messages.schemas import (
    MEDIA_TYPES,
    ChatMessage,
    ChatMessageList,
    InboundMessage,
    IngestResult,
    MessageSearchResult,
    MessageSend,
    MessageType,
)
from omnistream.security.principal import Actor
from omnistream.wa_templates import service as wa_templates

log = structlog.get_logger(__name__)

WHATSAPP_SESSION_WINDOW = timedelta(hours=24)
DELIVERY_JOB = "deliver_message"


def preview_of(message_type: str, text: str | None) -> str:
    return (text or f"[{message_type}]")[:200]


# ------------------------------------------------------------------ ingestion


# Raised by the ingestion function when a concurrent delivery stored the same message first.
ALREADY_STORED = "OS001"
DEADLOCK_DETECTED = "40P01"
_DEADLOCK_ATTEMPTS = 3


async def ingest_inbound(db: Database, inbound: InboundMessage) -> IngestResult:
    """Store a customer's message and everything it implies: a delivery of one message."""
    (result,) = await ingest_inbound_many(db, [inbound])
    return result


async def ingest_inbound_many(db: Database, inbounds: Sequence[InboundMessage]) -> list[IngestResult]:
    """Store a delivery of customer messages of one tenant (what one webhook carries, or what a
    worker's queue holds) in one transaction and one round trip; a result per message, in order.

    For each message: finds or creates the contact by its channel identity, finds, reopens or
    opens the conversation, stores the message once per provider id (a redelivered webhook is a
    no-op that returns the stored message), updates the conversation's counters, and writes
    the automation events of all of it. The work is the SQL function `ingest_inbound`:
    ingestion is the busiest write path, and round trips, transactions and commits are most of
    its cost, so a busy channel worker should hand over what it has queued, not one at a time.
    """
    if not inbounds:
        return []
    tenant_id = inbounds[0].tenant_id
    if any(inbound.tenant_id != tenant_id for inbound in inbounds):
        raise ValueError("one delivery holds the messages of one tenant")
    inbounds = [_storable(inbound) for inbound in inbounds]
    for attempt in range(1, _DEADLOCK_ATTEMPTS + 1):
        try:
            rows = await _ingest(db, tenant_id, inbounds)
        except asyncpg.PostgresError as error:
            # The transaction rolled back whatever the delivery made on the way.
            if len(inbounds) > 1 and error.sqlstate in (ALREADY_STORED, DEADLOCK_DETECTED):
                # A concurrent delivery won a race for one of these messages: each alone, then.
                return [await ingest_inbound(db, inbound) for inbound in inbounds]
            if error.sqlstate == DEADLOCK_DETECTED and attempt < _DEADLOCK_ATTEMPTS:
                continue  # alone, a message can still meet an agent's transaction locking in another order
            if error.sqlstate != ALREADY_STORED:
                raise
            return [await _stored_by_another_delivery(db, inbounds[0])]
        return [_result(row) for row in sorted(rows, key=lambda row: row["item"])]
    raise AssertionError("unreachable: the last attempt returns or raises")


async def _ingest(db: Database, tenant_id: UUID, inbounds: list[InboundMessage]) -> list[asyncpg.Record]:
    now = datetime.now(UTC)
    async with db.self_scoped() as conn:
        return await repository.ingest_inbound(
            conn,
            tenant_id,
            channel=[m.channel for m in inbounds],
            account_id=[m.account_id for m in inbounds],
            external_id=[m.external_id for m in inbounds],
            contact_name=[m.contact_name for m in inbounds],
            contact_phone=[m.contact_phone for m in inbounds],
            contact_email=[m.contact_email for m in inbounds],
            type=[m.type for m in inbounds],
            text=[m.text for m in inbounds],
            content=[m.content for m in inbounds],
            provider_message_id=[m.provider_message_id for m in inbounds],
            at=[m.sent_at or now for m in inbounds],
            preview=[preview_of(m.type, m.text) for m in inbounds],
            source=[m.source for m in inbounds],
        )


_CHANNELS = frozenset(get_args(Channel))
_MESSAGE_TYPES = frozenset(get_args(MessageType))
_TEXT_FIELDS = ("external_id", "provider_message_id", "text", "contact_name", "contact_phone", "contact_email")


def _storable(inbound: InboundMessage) -> InboundMessage:
    """The message as PostgreSQL can store it, or a ValueError naming what no channel may send.

    A provider's text can hold a NUL character, which neither text nor jsonb can: it is dropped
    here, so the delivery is stored rather than refused again on every redelivery.
    """
    if inbound.channel not in _CHANNELS:
        raise ValueError(f"unknown channel {inbound.channel!r}")
    if inbound.type not in _MESSAGE_TYPES:
        raise ValueError(f"unknown message type {inbound.type!r}")
    changes: dict[str, Any] = {
        name: value.replace("\x00", "")
        for name in _TEXT_FIELDS
        if isinstance(value := getattr(inbound, name), str) and "\x00" in value
    }
    if b"\\u0000" in msgspec.json.encode(inbound.content):
        changes["content"] = _without_nul(inbound.content)
    storable = msgspec.structs.replace(inbound, **changes) if changes else inbound
    if not storable.external_id.strip():
        raise ValueError("a message needs its sender's external_id")
    return storable


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_without_nul(key): _without_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    return value


async def _stored_by_another_delivery(db: Database, inbound: InboundMessage) -> IngestResult:
    async with db.read(inbound.tenant_id) as conn:
        row = await repository.find_by_provider_id(
            conn, inbound.tenant_id, inbound.channel, inbound.provider_message_id or ""
        )
    assert row is not None
    return IngestResult(message_id=row["id"], conversation_id=row["conversation_id"], duplicate=True)


def _result(row: asyncpg.Record) -> IngestResult:
    if row["duplicate"]:
        return IngestResult(message_id=row["message_id"], conversation_id=row["conversation_id"], duplicate=True)
    return IngestResult(
        message_id=row["message_id"],
        conversation_id=row["conversation_id"],
        duplicate=False,
        contact_id=row["contact_id"],
        conversation_created=row["conversation_created"],
        event_ids=list(row["event_ids"]),
    )


# ------------------------------------------------------------------ agents' side


async def list_messages(db: Database, actor: Actor, conversation_id: UUID, params: ListParams) -> ChatMessageList:
    async with db.read(actor.tenant_id) as conn:
        await conversations.require_visible(conn, actor, conversation_id)
        rows, total = await repository.list_page(conn, actor.tenant_id, conversation_id, params)
    rows, next_cursor = page_of(rows, params)
    return ChatMessageList(messages=rows, next_cursor=next_cursor, total=total)


def _content(data: MessageSend) -> dict[str, Any]:
    """Check that the message carries what its type needs and nothing another type needs."""
    needs = {
        "media": data.type in MEDIA_TYPES,
        "location": data.type == "location",
        "template": data.type == "template",
    }
    for field, needed in needs.items():
        present = getattr(data, field) is not None
        if needed and not present:
            raise Unprocessable(f"a {data.type} message needs {field}", field=field)
        if present and not needed:
            raise Unprocessable(f"{field} does not belong in a {data.type} message", field=field)
    if data.type == "text" and data.text is None:
        raise Unprocessable("a text message needs text", field="text")
    if data.type in ("location", "template", "audio") and data.text is not None:
        raise Unprocessable(f"a {data.type} message has no text", field="text")
    for field in ("media", "location", "template"):
        value = getattr(data, field)
        if value is not None:
            return {field: msgspec.to_builtins(value)}
    return {}


def check_sendable(data: MessageSend) -> None:
    """Refuse (422) a message whose fields do not fit its type, before it is kept to send later."""
    _content(data)


async def send_message(
    db: Database, arq: ArqRedis, actor: Actor, conversation_id: UUID, data: MessageSend
) -> ChatMessage:
    async with db.tenant(actor.tenant_id) as conn:
        row = await conversations.lock_for_message(conn, actor, conversation_id)
        message_id = await queue_outbound_in(conn, actor, row, data)
        message = await repository.get(conn, actor.tenant_id, message_id)
    assert message is not None
    await enqueue_delivery(arq, actor.tenant_id, message_id)
    return message


async def queue_outbound_in(conn: asyncpg.Connection, actor: Actor, row: asyncpg.Record, data: MessageSend) -> UUID:
    """Queue a message in the locked conversation `row`, inside the caller's transaction (which
    enqueues its delivery after commit). The sender is the actor: an agent, or automation."""
    content = _content(data)
    now = datetime.now(UTC)
    if row["status"] in ("closed", "expired"):
        raise Conflict(f"the conversation is {row['status']}; a new message from the contact opens a new one")
    if (
        row["channel"] == "whatsapp"
        and data.type != "template"
        and (row["last_inbound_at"] is None or now - row["last_inbound_at"] > WHATSAPP_SESSION_WINDOW)
    ):
        raise Unprocessable(
            "WhatsApp allows free-form messages only within 24 hours of the customer's last message; "
            'send an approved template instead (type "template"; '
            "the approved ones: GET /api/wa-templates?status=APPROVED)",
            field="type",
            code="whatsapp_session_expired",
        )
    if data.type == "template" and row["channel"] == "whatsapp" and data.template is not None:
        # Checked against the stored template before anything is queued: Meta would refuse it later.
        content["template"]["components"] = await wa_templates.validate_template_send(
            conn, actor.tenant_id, data.template.name, data.template.language, data.template.components
        )
    message_id = await repository.insert_outbound(
        conn,
        actor.tenant_id,
        conversation_id=row["id"],
        channel=row["channel"],
        type=data.type,
        text=data.text,
        content=content,
        sender_type="automation" if actor.user_id is None else "agent",
        sender_agent_id=actor.user_id,
    )
    await conversations.record_outbound(conn, actor.tenant_id, row["id"], now, preview_of(data.type, data.text))
    outbox = Outbox(actor.tenant_id, source="api" if actor.user_id else "automation")
    outbox.add(
        "message_sent",
        row["id"],
        row["contact_id"],
        {
            **conversations.snapshot(row),
            "message": {"id": message_id, "type": data.type, "text": data.text},
            "sender_type": "automation" if actor.user_id is None else "agent",
            "sender_agent_id": actor.user_id,
        },
    )
    await outbox.write(conn)
    await activity.record(
        conn, actor, "message.sent", "message", message_id, conversation_id=str(row["id"]), type=data.type
    )
    return message_id


class BulkOutbound(msgspec.Struct, frozen=True):
    """One message of a send to many conversations: the locked conversation row and what to send
    (already checked by the caller, as a campaign checks its message once for all)."""

    conversation: Any
    type: MessageType
    text: str | None
    content: dict[str, Any]


async def queue_outbound_many(
    conn: asyncpg.Connection,
    tenant_id: UUID,
    channel: str,
    items: Sequence[BulkOutbound],
    *,
    source: str,
    now: datetime,
) -> dict[UUID, UUID]:
    """Queue a message in each of many conversations (one each, all of `channel`) inside the
    caller's transaction, sent by automation, in a few statements whatever their number: the
    message id by conversation id. The caller enqueues their delivery after commit."""
    if not items:
        return {}
    ids = await repository.insert_outbound_many(
        conn,
        tenant_id,
        channel,
        {
            "conversation_ids": [item.conversation["id"] for item in items],
            "types": [item.type for item in items],
            "texts": [item.text for item in items],
            "contents": [item.content for item in items],
        },
    )
    await conversations.record_outbound_many(
        conn, tenant_id, now, {item.conversation["id"]: preview_of(item.type, item.text) for item in items}
    )
    outbox = Outbox(tenant_id, source=source)
    for item in items:
        row = item.conversation
        outbox.add(
            "message_sent",
            row["id"],
            row["contact_id"],
            {
                **conversations.snapshot(row),
                "message": {"id": ids[row["id"]], "type": item.type, "text": item.text},
                "sender_type": "automation",
                "sender_agent_id": None,
            },
        )
    await outbox.write(conn)
    return ids


async def withdraw_queued(conn: asyncpg.Connection, tenant_id: UUID, ids: list[UUID], reason: str) -> list[UUID]:
    """Those of `ids` still waiting for their first send, failed with `reason` so that they never
    go (a send already under way is left to finish)."""
    return await repository.withdraw_queued(conn, tenant_id, ids, reason)


async def enqueue_delivery(arq: ArqRedis, tenant_id: UUID, message_id: UUID) -> None:
    """After commit: the row is the truth, the job only a nudge (the sweeper re-sends lost ones)."""
    try:
        await arq.enqueue_job(DELIVERY_JOB, str(tenant_id), str(message_id), _job_id=f"deliver:{message_id}")
    except Exception as exc:
        log.warning("delivery job not enqueued", message_id=str(message_id), error=str(exc))


async def search_messages(
    db: Database,
    actor: Actor,
    params: ListParams,
    *,
    q: str,
    channel: str | None,
    conversation_id: UUID | None,
    direction: str | None,
    created_from: str | None,
    created_to: str | None,
) -> MessageSearchResult:
    if not q.strip():
        raise Unprocessable("q must contain a word to search for", field="q")
    created_from, created_to = date_range(created_from, created_to)
    filters: dict[str, Any] = {
        "q": q,
        "channel": channel,
        "conversation_id": conversation_id,
        "direction": direction,
        "created_from": created_from,
        "created_to": created_to,
    }
    async with db.read(actor.tenant_id) as conn:
        filters |= await conversations.visibility(conn, actor)
        rows, total = await repository.search(conn, actor.tenant_id, params, filters)
    return MessageSearchResult(messages=rows, next_cursor=None, total=total)


# ------------------------------------------------------------------ providers' receipts


async def apply_statuses(db: Database, tenant_id: UUID, channel: str, updates: Sequence[StatusUpdate]) -> int:
    """Move the outbound messages the receipts name forward (never back); keep the receipts for
    messages whose send has not answered yet. The number of messages moved."""
    if not updates:
        return 0
    columns: dict[str, list[Any]] = {
        "provider_message_ids": [u.provider_message_id for u in updates],
        "statuses": [u.status for u in updates],
        "occurred_at": [u.occurred_at for u in updates],
        "error_codes": [u.error_code for u in updates],
        "error_messages": [_without_nul(u.error_message) for u in updates],
    }
    async with db.tenant(tenant_id) as conn:
        row = await repository.apply_statuses(conn, tenant_id, channel, columns)
    return int(row["moved"])


async def purge_early_statuses(db: Database, older_than: timedelta) -> int:
    async with db.anonymous() as conn:
        return await repository.purge_early_statuses(conn, older_than)


async def email_thread_identity(db: Database, tenant_id: UUID, message_ids: Sequence[str]) -> str | None:
    """The email address of the contact whose thread an email answers (its In-Reply-To and
    References name the Message-IDs of that thread's messages); None for a new thread."""
    if not message_ids:
        return None
    async with db.read(tenant_id) as conn:
        return await repository.email_thread_identity(conn, tenant_id, list(message_ids))


# ------------------------------------------------------------------ customers' media


async def has_media(db: Database, tenant_id: UUID, message_id: UUID) -> bool:
    async with db.read(tenant_id) as conn:
        return await repository.has_media(conn, tenant_id, message_id)


async def attach_media(db: Database, tenant_id: UUID, message_id: UUID, media_id: UUID) -> None:
    async with db.tenant(tenant_id) as conn:
        await repository.attach_media(conn, tenant_id, message_id, media_id)
