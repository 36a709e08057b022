"""CSAT surveys: an agent (or, on resolving, automation) sends the customer a message with a link
`{public_url}/csat/{token}`; the customer answers once through it, without an account.

* The token is `secrets.token_urlsafe(32)`; only its SHA-256 is stored, so the database alone
  cannot answer for a customer. The link lasts `csat_link_days` (410 after).
* A conversation has at most one open survey (409 for a second); one whose link ran out
  unanswered no longer counts as open.
* An answer writes a `csat_submitted` event in its transaction (the outbox), for automation,
  SLA clocks and outgoing webhooks.
* With the tenant's `send_on_resolve`, the outbox subscriber `send_on_resolve` sends a survey
  when a conversation is resolved; a redelivered event sends no second one.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

import asyncpg
import structlog
from arq import ArqRedis

from omnistream.activity import service as activity
from omnistream.automation.service import Outbox
from omnistream.config import Settings, load_settings
from omnistream.conversations import service as conversations
from omnistream.csat import repository
from omnistream.csat.schemas import (
    AgentCsat,
    ChannelCsat,
    CsatAnalytics,
    CsatSettings,
    CsatSettingsUpdate,
    CsatSubmit,
    CsatSubmitted,
    CsatSurvey,
    DivisionCsat,
    RatingDistribution,
)
from omnistream.db import Database, Savepoint
from omnistream.errors import AppError, Conflict, Gone, Unprocessable, not_found
from omnistream.integrations import service as integrations
from omnistream.kit.pagination import date_range
from omnistream.messages import service as messages
from omnistream.messages.schemas import MessageSend
from omnistream.security.principal import Actor

if TYPE_CHECKING:
    from omnistream.automation_events.processing import Claim

log = structlog.get_logger(__name__)

TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")
"""What `secrets.token_urlsafe(32)` makes: anything else names no survey."""
SURVEY_TEXT = "How did we do? Please rate this conversation from 1 to 5: {link}"


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def _send_in(
    conn: asyncpg.Connection,
    settings: Settings,
    actor: Actor,
    row: asyncpg.Record,
    now: datetime,
    source_event_id: UUID | None = None,
) -> tuple[UUID, UUID]:
    """Queue the survey message in the locked conversation `row` and store the survey, inside the
    caller's transaction: the survey's id and its message's."""
    tenant_id = actor.tenant_id
    account = await integrations.sending_account(conn, settings, tenant_id, row["channel"], row["account_id"])
    if account is None or not account.active:
        raise Unprocessable(
            f"the conversation has no connected {row['channel']} account to reach the customer through",
            field="conversation_id",
            code="no_channel",
        )
    await repository.close_expired(conn, tenant_id, row["id"], now)
    if await repository.open_survey_exists(conn, tenant_id, row["id"]):
        raise Conflict("the conversation has an open survey already: wait for its answer or its expiry")
    token = secrets.token_urlsafe(32)
    link = f"{settings.public_url.rstrip('/')}/csat/{token}"
    message_id = await messages.queue_outbound_in(conn, actor, row, MessageSend(text=SURVEY_TEXT.format(link=link)))
    survey_id = await repository.insert(
        conn,
        tenant_id,
        conversation_id=row["id"],
        token_hash=_hash(token),
        channel=row["channel"],
        agent_id=row["assigned_agent_id"],
        division_id=row["division_id"],
        message_id=message_id,
        created_by=actor.user_id,
        source_event_id=source_event_id,
        sent_at=now,
        expires_at=now + timedelta(days=settings.csat_link_days),
    )
    await activity.record(
        conn, actor, "csat.sent", "csat_survey", survey_id, conversation_id=str(row["id"]), message_id=str(message_id)
    )
    return survey_id, message_id


async def create_survey(
    db: Database, arq: ArqRedis, settings: Settings, actor: Actor, conversation_id: UUID, now: datetime | None = None
) -> CsatSurvey:
    now = now or datetime.now(UTC)
    async with db.tenant(actor.tenant_id) as conn:
        row = await conversations.lock_for_message(conn, actor, conversation_id)
        _, message_id = await _send_in(conn, settings, actor, row, now)
        survey = await repository.latest(conn, actor.tenant_id, conversation_id, now)
    await messages.enqueue_delivery(arq, actor.tenant_id, message_id)
    assert survey is not None
    return survey


async def latest_survey(db: Database, actor: Actor, conversation_id: UUID, now: datetime | None = None) -> CsatSurvey:
    async with db.read(actor.tenant_id) as conn:
        await conversations.require_visible(conn, actor, conversation_id)
        survey = await repository.latest(conn, actor.tenant_id, conversation_id, now or datetime.now(UTC))
    if survey is None:
        raise not_found("survey")
    return survey


async def submit(db: Database, token: str, data: CsatSubmit, now: datetime | None = None) -> CsatSubmitted:
    """The customer's answer, once, by the link's token (no account)."""
    now = now or datetime.now(UTC)
    if not TOKEN.fullmatch(token):
        raise not_found("survey")
    token_hash = _hash(token)
    async with db.anonymous() as conn:
        tenant_id = await repository.tenant_by_token_hash(conn, token_hash)
    if tenant_id is None:
        raise not_found("survey")
    async with db.tenant(tenant_id) as conn:
        survey = await repository.lock_by_token_hash(conn, tenant_id, token_hash)
        if survey is None:
            raise not_found("survey")
        if survey["status"] == "submitted":
            raise Conflict("this survey has been answered already")
        if survey["status"] == "expired" or survey["expires_at"] <= now:
            raise Gone("this survey link has expired")
        await repository.submit(conn, tenant_id, survey["id"], data.rating, data.comment, now)
        snapshot = await conversations.snapshot_of(conn, tenant_id, survey["conversation_id"])
        if snapshot is not None:
            outbox = Outbox(tenant_id, source="csat")
            outbox.add(
                "csat_submitted",
                survey["conversation_id"],
                snapshot["contact_id"],
                {
                    **snapshot,
                    "survey_id": survey["id"],
                    "rating": data.rating,
                    "comment": data.comment,
                    "rated_agent_id": survey["agent_id"],
                },
            )
            await outbox.write(conn)
    return CsatSubmitted(
        message="thank you for your rating", rating=data.rating, comment=data.comment, submitted_at=now
    )


# ------------------------------------------------------------------ the tenant's setting


async def get_settings(db: Database, actor: Actor) -> CsatSettings:
    async with db.read(actor.tenant_id) as conn:
        return CsatSettings(send_on_resolve=await repository.send_on_resolve(conn, actor.tenant_id))


async def update_settings(
    db: Database, actor: Actor, data: CsatSettingsUpdate, now: datetime | None = None
) -> CsatSettings:
    enabled = data.send_on_resolve
    async with db.tenant(actor.tenant_id) as conn:
        await repository.set_send_on_resolve(conn, actor.tenant_id, enabled, actor.user_id, now or datetime.now(UTC))
        await activity.record(conn, actor, "csat.settings_updated", "csat_settings", None, send_on_resolve=enabled)
    return CsatSettings(send_on_resolve=enabled)


async def send_on_resolve(conn: asyncpg.Connection, tenant_id: UUID, events: Sequence[Claim]) -> list[UUID]:
    """Outbox subscriber: a survey for each conversation just resolved, when the tenant wants it;
    the ids of the survey messages queued. A conversation that cannot be surveyed (reopened since,
    a survey open already, WhatsApp's 24-hour window passed, no account) is skipped."""
    resolved = [
        e
        for e in events
        if e.event_type == "status_changed"
        and e.payload.get("status") == "resolved"
        and e.payload.get("previous_status") != "resolved"
    ]
    if not resolved or not await repository.send_on_resolve(conn, tenant_id):
        return []
    # The worker's own settings: the link's base and lifetime are the deployment's.
    settings = load_settings()
    actor = Actor.automation(tenant_id)
    now = datetime.now(UTC)
    queued: list[UUID] = []
    for event in resolved:
        if await repository.survey_for_event_exists(conn, tenant_id, event.id):
            continue  # a redelivered event
        row = await conversations.lock_for_automation(conn, tenant_id, event.conversation_id)
        if row is None or row["status"] != "resolved":
            continue
        try:
            async with Savepoint(conn, "csat_on_resolve"):
                _, message_id = await _send_in(conn, settings, actor, row, now, source_event_id=event.id)
        except AppError as skipped:
            log.info("no survey on resolve", conversation_id=str(row["id"]), reason=skipped.detail)
            continue
        queued.append(message_id)
    return queued


# ------------------------------------------------------------------ analytics


def _figures(row: Any) -> dict[str, Any]:
    return {
        "surveys_sent": row["surveys_sent"],
        "responses": row["responses"],
        "response_rate": row["response_rate"],
        "average_rating": row["average_rating"],
        "distribution": RatingDistribution(**{f"rated_{n}": row[f"rated_{n}"] for n in range(1, 6)}),
    }


async def analytics(db: Database, actor: Actor, created_from: str | None, created_to: str | None) -> CsatAnalytics:
    """Surveys sent in the range (by their sending time), overall and by agent, division and channel."""
    start, end = date_range(created_from, created_to)
    async with db.read(actor.tenant_id) as conn:
        rows = await repository.analytics(conn, actor.tenant_id, start, end)
    by: dict[str, list[Any]] = {"agent": [], "division": [], "channel": []}
    for row in rows:
        if row["dimension"] == "agent":
            by["agent"].append(AgentCsat(agent_id=row["agent_id"], **_figures(row)))
        elif row["dimension"] == "division":
            by["division"].append(DivisionCsat(division_id=row["division_id"], **_figures(row)))
        elif row["dimension"] == "channel":
            by["channel"].append(ChannelCsat(channel=row["channel"], **_figures(row)))
    # Grouping by nothing yields its row even when no survey was sent.
    overall = next(row for row in rows if row["dimension"] == "all")
    return CsatAnalytics(
        **_figures(overall),
        created_from=start,
        created_to=end,
        by_agent=by["agent"],
        by_division=by["division"],
        by_channel=by["channel"],
    )
