"""Scheduled messages: an agent's message (text, media or a WhatsApp template) kept until its time,
then sent by the worker through the messages service as that agent.

What can only be known at the time of sending is checked then: a closed conversation, WhatsApp's
24-hour window, the template still approved, the agent still active and still seeing the
conversation. A refusal marks the scheduled message failed, with why.

Sending and cancelling both lock the row: the worker claims a due row `FOR UPDATE SKIP LOCKED` and
marks it sent in the transaction that queues the message; a cancel waits for that transaction and
then finds it sent (409). So a message is either sent once or cancelled, never both.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import msgspec
import structlog
from arq import ArqRedis

from omnistream.activity import service as activity
from omnistream.auth import service as auth
from omnistream.config import Settings
from omnistream.conversations import service as conversations
from omnistream.db import Database, Savepoint
from omnistream.errors import AppError, Conflict, NotFound, Unprocessable, not_found
from omnistream.kit.pagination import Cursor, ListParams, page_of, query_moment
from omnistream.messages import service as messages
from omnistream.messages.schemas import MessageSend
from omnistream.scheduled_messages import repository
from omnistream.scheduled_messages.schemas import ScheduledMessage, ScheduledMessageCreate, ScheduledMessageList
from omnistream.security.principal import Actor
from omnistream.wa_templates import service as wa_templates

log = structlog.get_logger(__name__)

LONGEST_AHEAD = timedelta(days=365)
BATCH_PER_TENANT = 200
"""Messages one sweep sends per tenant; the rest wait for the next sweep, a few seconds later."""
ENDED = ("closed", "expired")


def _by_send_at(message: ScheduledMessage) -> Cursor:
    return Cursor(message.send_at, message.id)


async def schedule(
    db: Database,
    settings: Settings,
    actor: Actor,
    conversation_id: UUID,
    data: ScheduledMessageCreate,
    now: datetime | None = None,
) -> ScheduledMessage:
    now = now or datetime.now(UTC)
    send_at = query_moment(data.send_at, "send_at")
    assert send_at is not None
    lead = timedelta(seconds=settings.scheduled_message_min_lead_seconds)
    if send_at < now + lead:
        raise Unprocessable(f"send_at must be at least {int(lead.total_seconds())} seconds ahead", field="send_at")
    if send_at > now + LONGEST_AHEAD:
        raise Unprocessable("send_at must be at most a year ahead", field="send_at")
    fields = msgspec.structs.asdict(data)
    del fields["send_at"]
    message = MessageSend(**fields)
    messages.check_sendable(message)
    async with db.tenant(actor.tenant_id) as conn:
        row = await conversations.lock_for_message(conn, actor, conversation_id)
        if row["status"] in ENDED:
            raise Conflict(f"the conversation is {row['status']}; a new message from the contact opens a new one")
        if message.template is not None and row["channel"] == "whatsapp":
            # Refused now rather than at its time: the template must exist and its parameters fit.
            await wa_templates.validate_template_send(
                conn, actor.tenant_id, message.template.name, message.template.language, message.template.components
            )
        scheduled_id = await repository.insert(
            conn, actor.tenant_id, conversation_id, msgspec.to_builtins(message), send_at, actor.user_id
        )
        await activity.record(
            conn,
            actor,
            "scheduled_message.created",
            "scheduled_message",
            scheduled_id,
            conversation_id=str(conversation_id),
            send_at=send_at.isoformat(),
            type=message.type,
        )
        scheduled = await repository.get(conn, actor.tenant_id, scheduled_id)
    assert scheduled is not None
    return scheduled


async def list_scheduled(
    db: Database, actor: Actor, conversation_id: UUID, params: ListParams, status: str | None
) -> ScheduledMessageList:
    async with db.read(actor.tenant_id) as conn:
        await conversations.require_visible(conn, actor, conversation_id)
        rows, total = await repository.list_page(conn, actor.tenant_id, conversation_id, params, status)
    rows, next_cursor = page_of(rows, params, _by_send_at)
    return ScheduledMessageList(scheduled_messages=rows, next_cursor=next_cursor, total=total)


async def cancel(db: Database, actor: Actor, scheduled_id: UUID, now: datetime | None = None) -> None:
    now = now or datetime.now(UTC)
    async with db.tenant(actor.tenant_id) as conn:
        row = await repository.lock(conn, actor.tenant_id, scheduled_id)
        if row is None:
            raise not_found("scheduled message")
        try:
            await conversations.require_visible(conn, actor, row["conversation_id"])
        except NotFound as exc:
            raise not_found("scheduled message") from exc
        if row["status"] != "pending":
            raise Conflict(f"the scheduled message is {row['status']} already", current_status=row["status"])
        await repository.cancel(conn, actor.tenant_id, scheduled_id, actor.user_id, now)
        await activity.record(
            conn,
            actor,
            "scheduled_message.cancelled",
            "scheduled_message",
            scheduled_id,
            conversation_id=str(row["conversation_id"]),
        )


# ------------------------------------------------------------------ the worker


async def send_due(db: Database, arq: ArqRedis, now: datetime) -> int:
    """Send every message due at `now`, each in its own transaction, then enqueue the deliveries;
    the number sent (refusals are recorded, not counted)."""
    async with db.anonymous() as conn:
        tenant_ids = await repository.tenants_with_due(conn, now)
    sent = 0
    for tenant_id in tenant_ids:
        for _ in range(BATCH_PER_TENANT):
            outcome = await _send_next(db, tenant_id, now)
            if outcome is None:
                break
            if isinstance(outcome, UUID):
                sent += 1
                await messages.enqueue_delivery(arq, tenant_id, outcome)
    return sent


async def _send_next(db: Database, tenant_id: UUID, now: datetime) -> UUID | str | None:
    """The message id sent, the reason of a refusal, or None when nothing more is due."""
    async with db.tenant(tenant_id) as conn:
        row = await repository.claim_due(conn, tenant_id, now)
        if row is None:
            return None
        try:
            async with Savepoint(conn, "scheduled_send"):
                actor = await auth.active_actor_in(conn, tenant_id, row["created_by"])
                if actor is None:
                    raise Conflict("the agent who scheduled it is no longer active")
                conversation = await conversations.lock_for_message(conn, actor, row["conversation_id"])
                message_id = await messages.queue_outbound_in(
                    conn, actor, conversation, msgspec.convert(row["body"], MessageSend)
                )
        except AppError as refusal:
            await repository.mark_failed(conn, tenant_id, row["id"], refusal.detail, now)
            log.info("scheduled message refused", scheduled_message_id=str(row["id"]), reason=refusal.detail)
            return refusal.detail
        await repository.mark_sent(conn, tenant_id, row["id"], message_id, now)
        return message_id
