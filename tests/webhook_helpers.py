"""Meta's and the mail provider's webhooks as tests send them: accounts connected straight in the
database (the integrations API has its own tests), bodies in the shapes Meta sends, signed."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from omnistream.config import Settings
from omnistream.security.secrets import digest
from omnistream.webhooks import inbox
from omnistream.webhooks.tasks import InboundDrain

ACCESS_TOKEN = "EAAG-test-token"  # the Graph API stand-in takes any bearer token


async def connect_account(
    database: str,
    settings: Settings,
    tenant_id: str,
    channel: str,
    external_id: str,
    *,
    app_secret: str | None = None,
    verify_token: str | None = None,
    business_account_id: str | None = None,
    secret: str | None = None,
    access_token: str | None = ACCESS_TOKEN,
    status: str = "active",
    display_name: str | None = None,
) -> UUID:
    """An account of `channel` connected for the tenant, with the tenant's app secret (sealed as
    the integrations area seals it)."""
    box = settings.secrets
    conn = await asyncpg.connect(database)
    try:
        if app_secret is not None or verify_token is not None:
            await conn.execute(
                """INSERT INTO channel_integrations (tenant_id, channel, app_secret_encrypted, verify_token_encrypted,
                                                     verify_token_digest)
                   VALUES ($1, $2, $3, $4, $5)
                   ON CONFLICT (tenant_id, channel) DO UPDATE
                      SET app_secret_encrypted = EXCLUDED.app_secret_encrypted,
                          verify_token_encrypted = EXCLUDED.verify_token_encrypted,
                          verify_token_digest = EXCLUDED.verify_token_digest""",
                UUID(tenant_id),
                channel,
                box.seal(app_secret) if app_secret else None,
                box.seal(verify_token) if verify_token else None,
                digest(verify_token) if verify_token else None,
            )
        return await conn.fetchval(
            """INSERT INTO integration_accounts (tenant_id, channel, external_id, display_name, business_account_id,
                                                 access_token_encrypted, secret_encrypted, status, is_default)
               VALUES ($1, $2, $3, $8, $4, $5, $6, $7,
                       NOT EXISTS (SELECT 1 FROM integration_accounts WHERE tenant_id = $1 AND channel = $2))
               RETURNING id""",
            UUID(tenant_id),
            channel,
            external_id,
            business_account_id,
            box.seal(access_token) if access_token else None,
            box.seal(secret) if secret else None,
            status,
            display_name or external_id,
        )
    finally:
        await conn.close()


def signed(body: Any, secret: str, header: str = "X-Hub-Signature-256") -> tuple[bytes, dict[str, str]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    signature = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return raw, {header: f"sha256={signature}", "Content-Type": "application/json"}


def phone_id() -> str:
    return str(10**14 + uuid4().int % 10**14)


def wamid() -> str:
    return f"wamid.HBgN{uuid4().hex.upper()}"


def whatsapp(phone_number_id: str, *, messages: list[Any] = (), statuses: list[Any] = (), contacts: Any = None,
             waba_id: str = "102290129340398") -> dict[str, Any]:  # fmt: skip
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": phone_number_id},
    }
    if messages:
        value["contacts"] = contacts or [
            {"profile": {"name": "Kerry Fisher"}, "wa_id": m["from"]} for m in messages if "from" in m
        ]
        value["messages"] = list(messages)
    if statuses:
        value["statuses"] = list(statuses)
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": waba_id, "changes": [{"value": value, "field": "messages"}]}],
    }


def wa_message(kind: str, body: Any = None, *, sender: str = "16315551234", **extra: Any) -> dict[str, Any]:
    message = {"from": sender, "id": wamid(), "timestamp": str(int(time.time())), "type": kind, **extra}
    if body is not None:
        message[kind] = body
    return message


def wa_text(text: str, **extra: Any) -> dict[str, Any]:
    return wa_message("text", {"body": text}, **extra)


def wa_status(message_id: str, status: str, *, at: int | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": message_id,
        "status": status,
        "timestamp": str(at if at is not None else int(time.time())),
        "recipient_id": "16315551234",
        **extra,
    }


def page_event(kind: str, page_id: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    """A Messenger (`page`) or Instagram (`instagram`) delivery."""
    return {"object": kind, "entry": [{"id": page_id, "time": int(time.time() * 1000), "messaging": events}]}


CLOCK = itertools.count(int(time.time() * 1000))
"""Messenger's event times, in milliseconds: each a millisecond after the one before."""


def page_message(page_id: str, sender: str, message: dict[str, Any]) -> dict[str, Any]:
    return {
        "sender": {"id": sender},
        "recipient": {"id": page_id},
        "timestamp": next(CLOCK),
        "message": {"mid": f"m_{uuid4().hex}", **message},
    }


async def drain(arq: Any, db: Any, settings: Settings, *, all_stored: bool = True) -> int:
    """What the worker's inbound drain does with what is queued now: entries processed. Unless
    told otherwise, every entry must have been stored and acknowledged (the drain logs a failure
    and keeps the entry: a test would not see it)."""
    worker = InboundDrain(db, arq, arq, settings)
    await inbox.ensure_group(arq, settings.redis_prefix)
    processed = 0
    while entries := await inbox.take(arq, settings.redis_prefix, worker.consumer, 500, 1):
        await worker.process(entries)
        processed += len(entries)
    if all_stored:
        pending = await arq.xpending(inbox.stream_of(settings.redis_prefix), inbox.GROUP)
        assert pending["pending"] == 0, "entries the drain read and could not store"
    return processed
