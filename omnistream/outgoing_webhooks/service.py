"""Outgoing webhooks: endpoints that receive the organisation's events as signed POSTs.

Events come from the automation outbox: `fan_out` is its subscriber, called in the transaction
that marks a batch of events done, so only committed changes reach a webhook, each event once
per endpoint (`delivery` posts them). The signing secret is shown once, when the endpoint is
made; custom header values are hidden once saved. Both are sealed at rest.
"""

from __future__ import annotations

import secrets as random
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from uuid import UUID, uuid4

import asyncpg
import httpx
import msgspec

from omnistream.activity import service as activity
from omnistream.config import Settings
from omnistream.db import Database
from omnistream.errors import Unprocessable, not_found
from omnistream.kit.pagination import ListParams, date_range, page_of
from omnistream.kit.targets import Refused, check_target
from omnistream.outgoing_webhooks import delivery, repository
from omnistream.outgoing_webhooks.catalog import BY_NAME, CATALOG, PUBLIC_NAME
from omnistream.outgoing_webhooks.schemas import (
    HIDDEN,
    EventTypeCatalog,
    EventTypeInfo,
    OutgoingWebhook,
    OutgoingWebhookCreate,
    OutgoingWebhookCreated,
    OutgoingWebhookList,
    OutgoingWebhookUpdate,
    WebhookDelivery,
    WebhookDeliveryList,
    WebhookTest,
)
from omnistream.security.principal import Actor

if TYPE_CHECKING:
    from omnistream.automation_events.processing import Claim

SECRET_PREFIX = "whsec_"
DISABLED_BY_ADMIN = "disabled by an admin"
EXAMPLE_ID = UUID("8c7b6a59-4d3e-4f21-9e0d-1c2b3a4f5e6d")
EXAMPLE_TYPE = BY_NAME["message.received"]


# ---------------------------------------------------------------- rules


def _hint(secret: str) -> str:
    """Enough to tell secrets apart, too little to guess one: the made ones' prefix and the last four."""
    prefix = SECRET_PREFIX if secret.startswith(SECRET_PREFIX) else ""
    return f"{prefix}…{secret[-4:]}"


async def _check_url(url: str, settings: Settings) -> None:
    parts = urlsplit(url)
    if parts.scheme.lower() != "https" and not settings.webhooks_allow_private:
        raise Unprocessable("the URL must use https", field="url")
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError as exc:
        raise Unprocessable("the URL's port is not a number from 0 to 65535", field="url") from exc
    if not parts.hostname:
        raise Unprocessable("the URL has no host", field="url")
    if parts.username or parts.password:
        raise Unprocessable("put credentials in a custom header, not in the URL", field="url")
    try:
        await check_target(url, allow_private=settings.webhooks_allow_private)
    except Refused as refused:
        raise Unprocessable(f"the URL cannot be reached from here: {refused}", field="url") from refused


def _check_event_types(event_types: list[str]) -> list[str]:
    unknown = sorted(set(event_types) - BY_NAME.keys())
    if unknown:
        raise Unprocessable(
            f"unknown event types: {', '.join(unknown)}; known are {', '.join(BY_NAME)}",
            field="event_types",
            unknown_event_types=unknown,
        )
    return list(dict.fromkeys(event_types))


def _check_headers(headers: dict[str, str]) -> None:
    seen: set[str] = set()
    for name in headers:
        lowered = name.lower()
        if lowered in delivery.RESERVED_HEADERS or lowered.startswith(delivery.RESERVED_PREFIX):
            raise Unprocessable(
                f"the header {name!r} is set by OmniStream and cannot be overridden", field=f"headers.{name}"
            )
        if lowered in seen:
            raise Unprocessable(f"the header {name!r} is given twice (names ignore case)", field=f"headers.{name}")
        seen.add(lowered)


def _merged_headers(saved: dict[str, str], given: dict[str, str]) -> dict[str, str]:
    """The headers of an update: a value of HIDDEN keeps that header's saved value."""
    merged = {}
    for name, value in given.items():
        if value == HIDDEN:
            if name not in saved:
                raise Unprocessable(
                    f"{HIDDEN!r} stands for a saved value, and {name!r} has none; send the value itself",
                    field=f"headers.{name}",
                )
            value = saved[name]
        merged[name] = value
    return merged


def _sealed_headers(settings: Settings, headers: dict[str, str]) -> dict[str, Any]:
    return {
        "headers_sealed": settings.secrets.seal(msgspec.json.encode(headers).decode()) if headers else None,
        "header_names": list(headers),
    }


async def _endpoint(conn: asyncpg.Connection, tenant_id: UUID, webhook_id: UUID) -> OutgoingWebhook:
    webhook = await repository.get(conn, tenant_id, webhook_id)
    if webhook is None:
        raise not_found("outgoing webhook")
    return webhook


# ---------------------------------------------------------------- the API


def event_types() -> EventTypeCatalog:
    return EventTypeCatalog(
        event_types=[EventTypeInfo(name=t.name, description=t.description, example=t.example) for t in CATALOG],
        envelope=msgspec.json.decode(
            delivery.envelope(
                EXAMPLE_ID,
                EXAMPLE_TYPE.name,
                datetime(2025, 1, 15, 9, 30, tzinfo=UTC),
                EXAMPLE_ID,
                EXAMPLE_TYPE.example,
                test=False,
            )
        ),
    )


async def list_webhooks(
    db: Database, actor: Actor, params: ListParams, *, enabled: bool | None, event_type: str | None
) -> OutgoingWebhookList:
    async with db.read(actor.tenant_id) as conn:
        rows, total = await repository.list_page(conn, actor.tenant_id, params, enabled=enabled, event_type=event_type)
    rows, next_cursor = page_of(rows, params)
    return OutgoingWebhookList(outgoing_webhooks=rows, next_cursor=next_cursor, total=total)


async def create_webhook(
    db: Database, settings: Settings, actor: Actor, data: OutgoingWebhookCreate
) -> OutgoingWebhookCreated:
    types = _check_event_types(data.event_types)
    _check_headers(data.headers)
    await _check_url(data.url, settings)
    secret = data.secret or SECRET_PREFIX + random.token_urlsafe(32)
    async with db.tenant(actor.tenant_id) as conn:
        webhook_id = await repository.insert(
            conn,
            actor.tenant_id,
            actor.user_id,
            url=data.url,
            event_types=types,
            description=data.description,
            secret_sealed=settings.secrets.seal(secret),
            secret_hint=_hint(secret),
            enabled=data.enabled,
            disabled_reason=DISABLED_BY_ADMIN,
            **_sealed_headers(settings, data.headers),
        )
        await activity.record(
            conn, actor, "outgoing_webhook.created", "outgoing_webhook", webhook_id, url=data.url, event_types=types
        )
        made = await _endpoint(conn, actor.tenant_id, webhook_id)
    return OutgoingWebhookCreated(**msgspec.structs.asdict(made), secret=secret)


async def update_webhook(
    db: Database, settings: Settings, actor: Actor, webhook_id: UUID, data: OutgoingWebhookUpdate
) -> OutgoingWebhook:
    changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET}
    if isinstance(data.event_types, list):
        changes["event_types"] = _check_event_types(data.event_types)
    if isinstance(data.headers, dict):
        _check_headers(data.headers)
    if isinstance(data.url, str):
        await _check_url(data.url, settings)  # before the row is locked: it may wait for DNS
    async with db.tenant(actor.tenant_id) as conn:
        row = await repository.lock(conn, actor.tenant_id, webhook_id)
        if row is None:
            raise not_found("outgoing webhook")
        current = await _endpoint(conn, actor.tenant_id, webhook_id)
        sealed = {"secret_sealed": row["secret_sealed"], "secret_hint": current.secret_hint}
        if isinstance(data.secret, str):
            sealed = {"secret_sealed": settings.secrets.seal(data.secret), "secret_hint": _hint(data.secret)}
        if isinstance(data.headers, dict):
            saved = msgspec.json.decode(settings.secrets.open(row["headers_sealed"])) if row["headers_sealed"] else {}
            sealed |= _sealed_headers(settings, _merged_headers(saved, data.headers))
        else:
            sealed |= {"headers_sealed": row["headers_sealed"], "header_names": list(current.headers)}
        await repository.update(
            conn,
            actor.tenant_id,
            webhook_id,
            url=changes.get("url", current.url),
            event_types=changes.get("event_types", current.event_types),
            description=changes.get("description", current.description),
            enabled=changes.get("enabled", current.enabled),
            disabled_reason=DISABLED_BY_ADMIN,
            **sealed,
        )
        await activity.record(
            conn,
            actor,
            "outgoing_webhook.updated",
            "outgoing_webhook",
            webhook_id,
            changed=sorted(changes),
        )
        return await _endpoint(conn, actor.tenant_id, webhook_id)


async def delete_webhook(db: Database, actor: Actor, webhook_id: UUID) -> None:
    async with db.tenant(actor.tenant_id) as conn:
        row = await repository.delete(conn, actor.tenant_id, webhook_id)
        if row is None:
            raise not_found("outgoing webhook")
        await activity.record(conn, actor, "outgoing_webhook.deleted", "outgoing_webhook", webhook_id, url=row["url"])


async def list_deliveries(
    db: Database,
    actor: Actor,
    webhook_id: UUID,
    params: ListParams,
    *,
    event_type: str | None,
    event_id: UUID | None,
    succeeded: bool | None,
    created_from: str | None,
    created_to: str | None,
) -> WebhookDeliveryList:
    since, until = date_range(created_from, created_to)
    async with db.read(actor.tenant_id) as conn:
        await _endpoint(conn, actor.tenant_id, webhook_id)
        rows, total = await repository.attempts_page(
            conn,
            actor.tenant_id,
            webhook_id,
            params,
            event_type=event_type,
            event_id=event_id,
            succeeded=succeeded,
            created_from=since,
            created_to=until,
        )
    rows, next_cursor = page_of(rows, params)
    return WebhookDeliveryList(deliveries=rows, next_cursor=next_cursor, total=total)


async def send_test(
    db: Database,
    settings: Settings,
    actor: Actor,
    webhook_id: UUID,
    data: WebhookTest | None,
    *,
    now: datetime,
) -> WebhookDelivery:
    """Post an example event now and answer what came back; recorded in the log, not counted
    against the endpoint's health."""
    async with db.read(actor.tenant_id) as conn:
        row = await repository.sending_details(conn, actor.tenant_id, webhook_id)
    if row is None:
        raise not_found("outgoing webhook")
    event_type = data.event_type if data and data.event_type else row["event_types"][0]
    if event_type not in BY_NAME:
        raise Unprocessable(f"unknown event type {event_type!r}; known are {', '.join(BY_NAME)}", field="event_type")
    event_id, attempt_id = uuid4(), uuid4()
    body = delivery.envelope(event_id, event_type, now, actor.tenant_id, BY_NAME[event_type].example, test=True)
    headers = msgspec.json.decode(settings.secrets.open(row["headers_sealed"])) if row["headers_sealed"] else {}
    async with httpx.AsyncClient(follow_redirects=False) as http:
        outcome = await delivery.post(
            http,
            row["url"],
            body,
            secret=settings.secrets.open(row["secret_sealed"]),
            headers=headers,
            event_type=event_type,
            delivery_id=attempt_id,
            now=now,
            allow_private=settings.webhooks_allow_private,
        )
    async with db.tenant(actor.tenant_id) as conn:
        await repository.record_test_attempt(
            conn,
            actor.tenant_id,
            id=attempt_id,
            webhook_id=webhook_id,
            event_id=event_id,
            event_type=event_type,
            succeeded=outcome.succeeded,
            status_code=outcome.status_code,
            error=outcome.error,
            duration_ms=outcome.duration_ms,
            request_headers=outcome.request_headers,
            request_body=body,
            response_body=outcome.response_body,
            now=now,
        )
        recorded = await repository.get_attempt(conn, actor.tenant_id, attempt_id)
    if recorded is None:
        raise not_found("outgoing webhook")  # deleted while the test was under way
    return recorded


# ---------------------------------------------------------------- the outbox's subscriber


async def fan_out(conn: asyncpg.Connection, tenant_id: UUID, events: Sequence[Claim]) -> None:
    """One delivery per (event, subscribed enabled endpoint), in the caller's transaction."""
    public = [(e, PUBLIC_NAME[e.event_type]) for e in events if e.event_type in PUBLIC_NAME]
    if not public:
        return
    await repository.fan_out(
        conn,
        tenant_id,
        [e.id for e, _ in public],
        [name for _, name in public],
        [delivery.envelope(e.id, name, e.created_at, tenant_id, e.payload, test=False) for e, name in public],
        [e.created_at for e, _ in public],
    )
