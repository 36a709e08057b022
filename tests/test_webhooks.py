"""Inbound webhooks: Meta's (WhatsApp, Messenger, Instagram) and the email webhook, verified,
routed to their tenant, queued, drained into conversations; statuses moving messages forward."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import msgspec
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from litestar.testing import AsyncTestClient

from omnistream.app import create_app
from omnistream.channels.parsing import Parsed, ParsedAccountEvent, ParsedMessage, ParsedStatus, Skipped
from omnistream.channels.parsing import messenger as messenger_parser
from omnistream.channels.parsing import whatsapp as whatsapp_parser
from omnistream.config import Settings
from omnistream.webhooks import inbox
from omnistream.webhooks.tasks import InboundDrain
from tests.conftest import Tenant, problem
from tests.wa_template_helpers import approved_template
from tests.webhook_helpers import (
    CLOCK,
    connect_account,
    drain,
    page_event,
    page_message,
    phone_id,
    signed,
    wa_message,
    wa_status,
    wa_text,
    wamid,
    whatsapp,
)

APP_SECRET = "app-secret-of-the-tenant-0001"


@pytest.fixture
async def number(database: str, settings: Settings, tenant: Tenant) -> str:
    """A WhatsApp phone number id the tenant connected, with its app secret."""
    phone_number_id = phone_id()
    await connect_account(database, settings, tenant.id, "whatsapp", phone_number_id, app_secret=APP_SECRET)
    return phone_number_id


async def post_meta(client: AsyncTestClient, body: Any, secret: str = APP_SECRET, path: str = "meta") -> Any:
    raw, headers = signed(body, secret)
    return await client.post(f"/api/webhooks/{path}", content=raw, headers=headers)


async def conversations_of(client: AsyncTestClient, tenant: Tenant, **params: Any) -> list[dict[str, Any]]:
    response = await client.get("/api/conversations", params=params, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return list(response.json()["conversations"])


async def messages_of(client: AsyncTestClient, tenant: Tenant, conversation_id: str) -> list[dict[str, Any]]:
    response = await client.get(
        f"/api/conversations/{conversation_id}/messages",
        params={"sort_order": "asc", "per_page": 100},
        headers=tenant.headers,
    )
    assert response.status_code == 200, response.text
    return list(response.json()["messages"])


async def only_conversation(client: AsyncTestClient, tenant: Tenant) -> dict[str, Any]:
    conversations = await conversations_of(client, tenant)
    assert len(conversations) == 1, conversations
    return conversations[0]


# ---------------------------------------------------------------- verification


async def test_verification_answers_the_challenge_for_a_configured_verify_token(
    client: AsyncTestClient, database: str, settings: Settings, tenant: Tenant
) -> None:
    await connect_account(database, settings, tenant.id, "instagram", phone_id(), verify_token="ig-verify-token")
    query = {"hub.mode": "subscribe", "hub.verify_token": "ig-verify-token", "hub.challenge": "1158201444"}
    for path in ("meta", "instagram"):
        response = await client.get(f"/api/webhooks/{path}", params=query)
        assert (response.status_code, response.text) == (200, "1158201444")
        assert response.headers["content-type"].startswith("text/plain")
    # Instagram's token does not verify the Messenger subscription.
    problem(await client.get("/api/webhooks/messenger", params=query), 403)


@pytest.mark.parametrize(
    "query",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "not-the-token", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": "ig-verify-token", "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.verify_token": "ig-verify-token"},
        {},
    ],
)
async def test_verification_refuses_anything_else(
    client: AsyncTestClient, database: str, settings: Settings, tenant: Tenant, query: dict[str, str]
) -> None:
    await connect_account(database, settings, tenant.id, "instagram", phone_id(), verify_token="ig-verify-token")
    problem(await client.get("/api/webhooks/instagram", params=query), 403)


async def test_the_platforms_own_verify_token_verifies_every_endpoint(settings: Settings) -> None:
    platform = msgspec.structs.replace(settings, meta_verify_token="platform-verify")
    async with AsyncTestClient(app=create_app(platform)) as client:
        query = {"hub.mode": "subscribe", "hub.verify_token": "platform-verify", "hub.challenge": "42"}
        for path in ("meta", "messenger", "instagram"):
            assert (await client.get(f"/api/webhooks/{path}", params=query)).text == "42"


# ---------------------------------------------------------------- signatures and bad bodies


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Hub-Signature-256": "sha1=abcdef"},
        {"X-Hub-Signature-256": "sha256=not-hex"},
        {"X-Hub-Signature-256": "sha256=" + "0" * 64},
    ],
)
async def test_a_missing_or_wrong_signature_is_401_and_stores_nothing(
    client: AsyncTestClient, arq: Any, settings: Settings, number: str, headers: dict[str, str]
) -> None:
    body = json.dumps(whatsapp(number, messages=[wa_text("hello")])).encode()
    problem(await client.post("/api/webhooks/meta", content=body, headers=headers), 401)
    assert await inbox.backlog(arq, settings.redis_prefix) == 0


async def test_a_body_signed_with_another_secret_is_401(
    client: AsyncTestClient, arq: Any, settings: Settings, number: str
) -> None:
    problem(await post_meta(client, whatsapp(number, messages=[wa_text("hi")]), secret="someone-elses"), 401)
    assert await inbox.backlog(arq, settings.redis_prefix) == 0


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b'{"object": "whatsapp_business_account", "entry": [', b"not json", b'"a string"', b"[1, 2]"],
)
async def test_malformed_or_truncated_json_is_400(client: AsyncTestClient, number: str, raw: bytes) -> None:
    raw, headers = signed(raw, APP_SECRET)
    problem(await client.post("/api/webhooks/meta", content=raw, headers=headers), 400)


@pytest.mark.parametrize("path", ["meta", "email"])
async def test_a_body_not_sent_as_json_is_415(
    client: AsyncTestClient, arq: Any, settings: Settings, number: str, path: str
) -> None:
    raw, headers = signed(whatsapp(number, messages=[wa_text("hi")]), APP_SECRET)
    response = await client.post(f"/api/webhooks/{path}", content=raw, headers=headers | {"Content-Type": "text/plain"})
    assert "application/json" in problem(response, 415)["detail"]
    assert await inbox.backlog(arq, settings.redis_prefix) == 0


async def test_an_object_of_another_kind_is_400(client: AsyncTestClient, number: str) -> None:
    problem(await post_meta(client, {"object": "user", "entry": []}), 400)


async def test_a_body_over_the_limit_is_413_and_stores_nothing(
    settings: Settings, arq: Any, database: str, tenant: Tenant
) -> None:
    small = msgspec.structs.replace(settings, webhook_max_body_bytes=2048)
    async with AsyncTestClient(app=create_app(small)) as client:
        phone_number_id = phone_id()
        await connect_account(database, settings, tenant.id, "whatsapp", phone_number_id, app_secret=APP_SECRET)
        body = whatsapp(phone_number_id, messages=[wa_text("x" * 4000)])
        response = await post_meta(client, body)
        assert problem(response, 413)["detail"] == "the body is larger than 2048 bytes"
    assert await inbox.backlog(arq, settings.redis_prefix) == 0


async def test_an_unknown_account_is_acknowledged_and_ignored(
    client: AsyncTestClient, arq: Any, settings: Settings
) -> None:
    response = await post_meta(client, whatsapp(phone_id(), messages=[wa_text("hello")]))
    assert response.status_code == 200
    assert response.json() == {"received": 1, "queued": 0, "ignored": 1}
    assert await inbox.backlog(arq, settings.redis_prefix) == 0


async def test_a_disconnected_account_is_ignored(
    client: AsyncTestClient, arq: Any, database: str, settings: Settings, tenant: Tenant
) -> None:
    phone_number_id = phone_id()
    await connect_account(
        database, settings, tenant.id, "whatsapp", phone_number_id, app_secret=APP_SECRET, status="disconnected"
    )
    response = await post_meta(client, whatsapp(phone_number_id, messages=[wa_text("hello")]))
    assert response.json() == {"received": 1, "queued": 0, "ignored": 1}


async def test_an_account_disconnected_after_its_delivery_was_queued_stores_nothing(
    client: AsyncTestClient, arq: Any, db: Any, database: str, settings: Settings, tenant: Tenant, number: str
) -> None:
    """Routes are cached for seconds; the drain asks again before it stores anything."""
    assert (await post_meta(client, whatsapp(number, messages=[wa_text("first")]))).json()["queued"] == 1
    conn = await asyncpg.connect(database)
    try:
        await conn.execute("UPDATE integration_accounts SET status = 'disconnected' WHERE external_id = $1", number)
    finally:
        await conn.close()
    # Still routed by the cached route, and still dropped when drained.
    assert (await post_meta(client, whatsapp(number, messages=[wa_text("second")]))).json()["queued"] == 1
    await drain(arq, db, settings)
    assert await conversations_of(client, tenant) == []
    assert await inbox.backlog(arq, settings.redis_prefix) == 0


# ---------------------------------------------------------------- tenants kept apart


async def test_a_tenant_cannot_sign_its_way_into_another_tenants_inbox(
    client: AsyncTestClient, arq: Any, db: Any, database: str, settings: Settings, tenant: Tenant,
    other_tenant: Tenant, number: str,
) -> None:  # fmt: skip
    """The other tenant knows our phone number id and signs with its own app secret."""
    their_number = phone_id()
    await connect_account(database, settings, other_tenant.id, "whatsapp", their_number, app_secret="their-secret")
    problem(await post_meta(client, whatsapp(number, messages=[wa_text("injected")]), secret="their-secret"), 401)
    # Mixed into a delivery of their own number, ours is dropped and theirs goes through.
    body = whatsapp(their_number, messages=[wa_text("theirs")])
    body["entry"].append(whatsapp(number, messages=[wa_text("injected")])["entry"][0])
    response = await post_meta(client, body, secret="their-secret")
    assert response.json() == {"received": 2, "queued": 1, "ignored": 1}
    await drain(arq, db, settings)
    assert await conversations_of(client, tenant) == []
    theirs = await only_conversation(client, other_tenant)
    assert [m["text"] for m in await messages_of(client, other_tenant, theirs["id"])] == ["theirs"]


async def test_one_delivery_for_two_tenants_of_one_app_lands_in_each_inbox(
    client: AsyncTestClient, arq: Any, db: Any, database: str, settings: Settings, tenant: Tenant,
    other_tenant: Tenant,
) -> None:  # fmt: skip
    """Two tenants on the platform's app (same secret): each item goes to its own number's tenant."""
    platform = msgspec.structs.replace(settings, meta_app_secret="platform-app-secret")
    ours, theirs = phone_id(), phone_id()
    await connect_account(database, settings, tenant.id, "whatsapp", ours)
    await connect_account(database, settings, other_tenant.id, "whatsapp", theirs)
    body = whatsapp(ours, messages=[wa_text("for us")])
    body["entry"].append(whatsapp(theirs, messages=[wa_text("for them")])["entry"][0])
    async with AsyncTestClient(app=create_app(platform)) as platform_client:
        response = await post_meta(platform_client, body, secret="platform-app-secret")
    assert response.json() == {"received": 2, "queued": 2, "ignored": 0}
    await drain(arq, db, platform)
    for who, text in ((tenant, "for us"), (other_tenant, "for them")):
        conversation = await only_conversation(client, who)
        assert [m["text"] for m in await messages_of(client, who, conversation["id"])] == [text]


# ---------------------------------------------------------------- WhatsApp messages


async def test_a_whatsapp_text_becomes_a_conversation_once(
    client: AsyncTestClient, arq: Any, db: Any, settings: Settings, tenant: Tenant, number: str
) -> None:
    body = whatsapp(number, messages=[wa_text("Where is my order?", sender="6281234567890")])
    for _ in range(2):  # Meta redelivers what it thinks was not acknowledged
        response = await post_meta(client, body)
        assert response.json() == {"received": 1, "queued": 1, "ignored": 0}
    assert await drain(arq, db, settings) == 2
    conversation = await only_conversation(client, tenant)
    assert conversation["channel"] == "whatsapp"
    messages = await messages_of(client, tenant, conversation["id"])
    assert [(m["direction"], m["type"], m["text"]) for m in messages] == [("inbound", "text", "Where is my order?")]
    assert messages[0]["provider_message_id"] == body["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
    assert (conversation["contact"]["name"], conversation["contact"]["phone"]) == ("Kerry Fisher", "+6281234567890")
    assert await inbox.backlog(arq, settings.redis_prefix) == 0


EVERY_KIND = [
    (wa_text("plain"), "text", "plain"),
    (wa_message("image", {"id": "1001", "mime_type": "image/jpeg", "sha256": "abc", "caption": "receipt"}), "image",
     "receipt"),
    (wa_message("audio", {"id": "1002", "mime_type": "audio/ogg; codecs=opus", "voice": True}), "audio", None),
    (wa_message("video", {"id": "1003", "mime_type": "video/mp4"}), "video", None),
    (wa_message("document", {"id": "1004", "mime_type": "application/pdf", "filename": "invoice.pdf"}), "document",
     None),
    (wa_message("sticker", {"id": "1005", "mime_type": "image/webp", "animated": False}), "sticker", None),
    (wa_message("location", {"latitude": -6.2, "longitude": 106.8, "name": "Office", "address": "Jl. Sudirman"}),
     "location", "Office"),
    (wa_message("contacts", None, contacts=[{"name": {"formatted_name": "Budi", "first_name": "Budi"},
                                            "phones": [{"phone": "+62 812", "type": "CELL"}]}]), "contacts", "Budi"),
    (wa_message("interactive", {"type": "button_reply", "button_reply": {"id": "yes", "title": "Yes please"}}),
     "interactive", "Yes please"),
    (wa_message("interactive", {"type": "list_reply", "list_reply": {"id": "r1", "title": "Refund",
                                                                     "description": "Money back"}}),
     "interactive", "Refund"),
    (wa_message("button", {"payload": "STOP", "text": "Stop promotions"}), "interactive", "Stop promotions"),
    (wa_message("reaction", {"message_id": "wamid.earlier", "emoji": "\U0001f44d"}), "reaction", "\U0001f44d"),
    (wa_message("order", {"catalog_id": "77", "text": "", "product_items": [
        {"product_retailer_id": "sku-1", "quantity": 2, "item_price": 10, "currency": "USD"}]}), "system",
     "[order of 1 item]"),
    (wa_message("system", {"body": "Kerry changed their phone number", "type": "user_changed_number"}), "system",
     "Kerry changed their phone number"),
    (wa_message("unsupported", None, errors=[{"code": 131051, "title": "Message type unknown"}]), "system",
     "Message type unknown"),
    (wa_message("hologram", {"depth": 3}), "system", "[hologram message]"),
]  # fmt: skip


async def test_every_kind_of_whatsapp_message_is_stored_with_its_raw_item(
    client: AsyncTestClient, arq: Any, db: Any, settings: Settings, tenant: Tenant, number: str
) -> None:
    sent = [item for item, _, _ in EVERY_KIND]
    sent[1]["context"] = {"from": "15550783881", "id": "wamid.replied-to"}
    sent[0]["referral"] = {"source_url": "https://fb.me/ad", "source_type": "ad", "source_id": "120"}
    response = await post_meta(client, whatsapp(number, messages=sent))
    assert response.json()["queued"] == len(EVERY_KIND)
    await drain(arq, db, settings)
    conversation = await only_conversation(client, tenant)
    stored = {m["provider_message_id"]: m for m in await messages_of(client, tenant, conversation["id"])}
    for item, kind, text in EVERY_KIND:
        message = stored[item["id"]]
        assert (message["type"], message["text"]) == (kind, text), item
        assert message["content"]["raw"] == item
    assert stored[sent[1]["id"]]["content"]["context"]["id"] == "wamid.replied-to"
    assert stored[sent[0]["id"]]["content"]["referral"]["source_type"] == "ad"
    assert stored[sent[1]["id"]]["content"]["media"]["id"] == "1001"
    assert stored[sent[6]["id"]]["content"]["location"]["latitude"] == -6.2


async def test_an_unreadable_item_never_holds_back_the_others(
    client: AsyncTestClient, arq: Any, db: Any, settings: Settings, tenant: Tenant, number: str
) -> None:
    body = whatsapp(number, messages=[{"type": "text", "text": {"body": "no sender, no id"}}, wa_text("fine")])
    body["entry"][0]["changes"].append({"field": "messages", "value": "not an object"})
    response = await post_meta(client, body)
    assert response.json() == {"received": 3, "queued": 1, "ignored": 2}
    await drain(arq, db, settings)
    conversation = await only_conversation(client, tenant)
    assert [m["text"] for m in await messages_of(client, tenant, conversation["id"])] == ["fine"]


async def test_customer_media_is_fetched_from_the_graph_api_and_linked(
    client: AsyncTestClient, arq: Any, db: Any, settings: Settings, tenant: Tenant, number: str, graph: Any
) -> None:
    from omnistream.webhooks.tasks import fetch_inbound_media

    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    media_ref = graph.add_media(png, "image/png")
    image = wa_message("image", {"id": media_ref, "mime_type": "image/png"})
    await post_meta(client, whatsapp(number, messages=[image]))
    await drain(arq, db, settings)
    conversation = await only_conversation(client, tenant)
    [message] = await messages_of(client, tenant, conversation["id"])
    jobs = await arq.queued_jobs()
    [job] = [j for j in jobs if j.function == "fetch_inbound_media"]
    assert (job.args[1], job.args[3]) == (message["id"], media_ref)
    ctx = {"db": db, "settings": settings, "job_try": 1}
    assert await fetch_inbound_media(ctx, *job.args) == "fetched"
    assert await fetch_inbound_media(ctx, *job.args) == "already fetched"
    [fetched] = await messages_of(client, tenant, conversation["id"])
    media_id = fetched["content"]["media"]["media_id"]
    download = await client.get(f"/api/media/{media_id}", headers=tenant.headers)
    assert download.status_code == 200
    assert (download.content, download.headers["content-type"]) == (png, "image/png")
    # The Graph API was asked with the account's token.
    assert {r["authorization"] for r in graph.requests(media_ref)} == {"Bearer EAAG-test-token"}


# ---------------------------------------------------------------- Messenger and Instagram


@pytest.mark.parametrize(("kind", "channel"), [("page", "messenger"), ("instagram", "instagram")])
async def test_messenger_and_instagram_events_are_stored(
    client: AsyncTestClient, arq: Any, db: Any, database: str, settings: Settings, tenant: Tenant, kind: str,
    channel: str,
) -> None:  # fmt: skip
    page = phone_id()
    await connect_account(database, settings, tenant.id, channel, page, app_secret=APP_SECRET)
    customer = f"2{uuid4().int % 10**15:015d}"
    events = [
        page_message(page, customer, {"text": "hi there"}),
        page_message(page, customer, {"text": "Blue", "quick_reply": {"payload": "COLOR_BLUE"}}),
        page_message(page, customer, {"attachments": [
            {"type": "image", "payload": {"url": "https://cdn.example/1.jpg"}}]}),
        {"sender": {"id": customer}, "recipient": {"id": page}, "timestamp": next(CLOCK),
         "postback": {"title": "Get Started", "payload": "GET_STARTED", "mid": f"m_{uuid4().hex}"}},
        # The page's own message, echoed back: not the customer's.
        {"sender": {"id": page}, "recipient": {"id": customer}, "timestamp": next(CLOCK),
         "message": {"mid": f"m_{uuid4().hex}", "is_echo": True, "text": "our reply"}},
    ]  # fmt: skip
    response = await post_meta(client, page_event(kind, page, events), path=channel)
    assert response.json() == {"received": 5, "queued": 4, "ignored": 1}
    await drain(arq, db, settings)
    conversation = await only_conversation(client, tenant)
    assert conversation["channel"] == channel
    stored = await messages_of(client, tenant, conversation["id"])
    assert [m["text"] for m in stored] == ["hi there", "Blue", None, "Get Started"]
    assert stored[1]["content"]["quick_reply"]["payload"] == "COLOR_BLUE"
    assert stored[2]["type"] == "image"
    assert stored[3]["content"]["postback"]["payload"] == "GET_STARTED"


# ---------------------------------------------------------------- statuses


async def agent_reply(
    client: AsyncTestClient, tenant: Tenant, conversation_id: str, database: str, provider_id: str
) -> str:
    """An agent's reply, as the delivery worker leaves it once the provider took it."""
    response = await client.post(
        f"/api/conversations/{conversation_id}/messages", json={"text": "On its way"}, headers=tenant.headers
    )
    assert response.status_code == 201, response.text
    conn = await asyncpg.connect(database)
    try:
        await conn.execute(
            "UPDATE messages SET status = 'sent', provider_message_id = $2, sent_at = now() WHERE id = $1",
            UUID(response.json()["id"]),
            provider_id,
        )
    finally:
        await conn.close()
    return str(response.json()["id"])


async def test_statuses_move_a_reply_forward_and_never_back(
    client: AsyncTestClient, arq: Any, db: Any, database: str, settings: Settings, tenant: Tenant, number: str
) -> None:
    await post_meta(client, whatsapp(number, messages=[wa_text("hello")]))
    await drain(arq, db, settings)
    conversation = await only_conversation(client, tenant)
    provider_id = wamid()
    reply_id = await agent_reply(client, tenant, conversation["id"], database, provider_id)

    async def reply() -> dict[str, Any]:
        return next(m for m in await messages_of(client, tenant, conversation["id"]) if m["id"] == reply_id)

    now = int(time.time())
    pricing = {"billable": True, "pricing_model": "CBP", "category": "service"}
    await post_meta(client, whatsapp(number, statuses=[wa_status(provider_id, "delivered", at=now, pricing=pricing)]))
    await drain(arq, db, settings)
    assert (await reply())["status"] == "delivered"
    await post_meta(client, whatsapp(number, statuses=[wa_status(provider_id, "read", at=now + 5)]))
    await drain(arq, db, settings)
    # Late news of what already happened changes nothing.
    await post_meta(
        client,
        whatsapp(number, statuses=[wa_status(provider_id, "delivered", at=now + 9), wa_status(provider_id, "sent")]),
    )
    await drain(arq, db, settings)
    final = await reply()
    assert final["status"] == "read"
    assert await inbox.backlog(arq, settings.redis_prefix) == 0  # each receipt's delivery acknowledged
    assert final["delivered_at"].startswith(time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)))
    assert final["read_at"].startswith(time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now + 5)))


async def test_a_failed_status_stores_metas_error(
    client: AsyncTestClient, arq: Any, db: Any, database: str, settings: Settings, tenant: Tenant, number: str
) -> None:
    await post_meta(client, whatsapp(number, messages=[wa_text("hello")]))
    await drain(arq, db, settings)
    conversation = await only_conversation(client, tenant)
    provider_id = wamid()
    reply_id = await agent_reply(client, tenant, conversation["id"], database, provider_id)
    error = {
        "code": 131047,
        "title": "Re-engagement message",
        "message": "Re-engagement message",
        "error_data": {"details": "Message failed to send because more than 24 hours have passed"},
    }
    await post_meta(client, whatsapp(number, statuses=[wa_status(provider_id, "failed", errors=[error])]))
    await drain(arq, db, settings)
    reply = next(m for m in await messages_of(client, tenant, conversation["id"]) if m["id"] == reply_id)
    assert (reply["status"], reply["error_code"]) == ("failed", "131047")
    assert reply["error_message"] == (
        "Re-engagement message: Message failed to send because more than 24 hours have passed"
    )


async def test_a_status_before_the_sends_answer_waits_for_it(
    client: AsyncTestClient, arq: Any, db: Any, database: str, settings: Settings, tenant: Tenant, number: str
) -> None:
    early = wamid()
    await post_meta(client, whatsapp(number, statuses=[wa_status(early, "delivered")]))
    await drain(arq, db, settings)
    conn = await asyncpg.connect(database)
    try:
        waiting = await conn.fetch(
            "SELECT status FROM early_message_statuses WHERE tenant_id = $1 AND provider_message_id = $2",
            UUID(tenant.id),
            early,
        )
    finally:
        await conn.close()
    assert [r["status"] for r in waiting] == ["delivered"]
    assert await inbox.backlog(arq, settings.redis_prefix) == 0


async def test_a_status_of_another_tenants_message_moves_nothing(
    client: AsyncTestClient, arq: Any, db: Any, database: str, settings: Settings, tenant: Tenant,
    other_tenant: Tenant, number: str,
) -> None:  # fmt: skip
    """Their number's status webhook names our message's provider id: ours stays as it was."""
    await post_meta(client, whatsapp(number, messages=[wa_text("hello")]))
    await drain(arq, db, settings)
    conversation = await only_conversation(client, tenant)
    provider_id = wamid()
    reply_id = await agent_reply(client, tenant, conversation["id"], database, provider_id)
    their_number = phone_id()
    await connect_account(database, settings, other_tenant.id, "whatsapp", their_number, app_secret="their-secret")
    await post_meta(client, whatsapp(their_number, statuses=[wa_status(provider_id, "read")]), secret="their-secret")
    await drain(arq, db, settings)
    reply = next(m for m in await messages_of(client, tenant, conversation["id"]) if m["id"] == reply_id)
    assert reply["status"] == "sent"


async def test_receipts_for_messages_never_sent_from_here_are_let_go_after_a_day(
    db: Any, database: str, tenant: Tenant
) -> None:
    from omnistream.webhooks.tasks import purge_early_statuses

    conn = await asyncpg.connect(database)
    try:
        for provider_id, age in (("wamid.old", timedelta(hours=25)), ("wamid.recent", timedelta(hours=1))):
            await conn.execute(
                """INSERT INTO early_message_statuses (tenant_id, channel, provider_message_id, status, occurred_at,
                                                      received_at)
                   VALUES ($1, 'whatsapp', $2, 'delivered', now(), now() - $3::interval)""",
                UUID(tenant.id),
                provider_id,
                age,
            )
        assert await purge_early_statuses({"db": db}) == 1
        left = await conn.fetch("SELECT provider_message_id FROM early_message_statuses")
    finally:
        await conn.close()
    assert [r["provider_message_id"] for r in left] == ["wamid.recent"]


# ---------------------------------------------------------------- the drain


async def test_what_a_killed_worker_read_is_taken_over_by_another(
    client: AsyncTestClient, arq: Any, db: Any, settings: Settings, tenant: Tenant, number: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    await post_meta(client, whatsapp(number, messages=[wa_text("survives")]))
    await inbox.ensure_group(arq, settings.redis_prefix)
    # The first worker reads the entry and dies before ingesting it.
    taken = await inbox.take(arq, settings.redis_prefix, "worker-that-dies", 10, 1)
    assert len(taken) == 1
    assert await inbox.take(arq, settings.redis_prefix, "another", 10, 1) == []
    monkeypatch.setattr(inbox, "CLAIM_AFTER_MS", 0)
    survivor = InboundDrain(db, arq, arq, settings)
    await survivor.process(await inbox.reclaim(arq, settings.redis_prefix, survivor.consumer, 10))
    conversation = await only_conversation(client, tenant)
    assert [m["text"] for m in await messages_of(client, tenant, conversation["id"])] == ["survives"]
    assert await inbox.backlog(arq, settings.redis_prefix) == 0


async def test_a_restarted_worker_takes_over_what_its_exited_predecessor_read_at_once(
    client: AsyncTestClient, arq: Any, db: Any, settings: Settings, tenant: Tenant, number: str
) -> None:
    import socket
    import sys

    await post_meta(client, whatsapp(number, messages=[wa_text("read, never stored")]))
    await inbox.ensure_group(arq, settings.redis_prefix)
    exited = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await exited.wait()
    dead = f"{socket.gethostname()}:{exited.pid}:a1b2c3"
    alive = f"{socket.gethostname()}:1:d4e5f6"  # pid 1 always runs: its entries wait for the idle-time reclaim
    assert len(await inbox.take(arq, settings.redis_prefix, dead, 10, 1)) == 1
    await post_meta(client, whatsapp(number, messages=[wa_text("read by a live worker")]))
    assert len(await inbox.take(arq, settings.redis_prefix, alive, 10, 1)) == 1

    successor = InboundDrain(db, arq, arq, settings)
    task = asyncio.create_task(successor.run())
    try:
        for _ in range(100):
            if await conversations_of(client, tenant):
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
    conversation = await only_conversation(client, tenant)
    assert [m["text"] for m in await messages_of(client, tenant, conversation["id"])] == ["read, never stored"]
    consumers = {c["name"] for c in await arq.xinfo_consumers(inbox.stream_of(settings.redis_prefix), inbox.GROUP)}
    assert dead.encode() not in consumers
    assert alive.encode() in consumers


async def test_a_tenant_whose_ingestion_fails_keeps_its_entries_queued(
    client: AsyncTestClient, arq: Any, db: Any, settings: Settings, tenant: Tenant, number: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    from omnistream.webhooks import tasks

    await post_meta(client, whatsapp(number, messages=[wa_text("later")]))

    async def database_down(*args: Any) -> Any:
        raise ConnectionError("the database went away")

    monkeypatch.setattr(tasks, "_ingest_each_storable", database_down)
    await drain(arq, db, settings, all_stored=False)
    assert await inbox.backlog(arq, settings.redis_prefix) == 1
    monkeypatch.undo()
    monkeypatch.setattr(inbox, "CLAIM_AFTER_MS", 0)
    survivor = InboundDrain(db, arq, arq, settings)
    await survivor.process(await inbox.reclaim(arq, settings.redis_prefix, survivor.consumer, 10))
    assert await inbox.backlog(arq, settings.redis_prefix) == 0
    assert len(await conversations_of(client, tenant)) == 1


async def test_an_entry_that_cannot_be_read_is_set_aside(arq: Any, db: Any, settings: Settings) -> None:
    await inbox.ensure_group(arq, settings.redis_prefix)
    await arq.xadd(inbox.stream_of(settings.redis_prefix), {"d": b"\xc1not msgpack"})
    await drain(arq, db, settings)
    assert await inbox.backlog(arq, settings.redis_prefix) == 0
    [(_, fields)] = await arq.xrange(inbox.dead_letters_of(settings.redis_prefix))
    assert fields[b"reason"] == b"not a queued delivery"


async def test_a_burst_is_ingested_in_few_transactions(
    client: AsyncTestClient, arq: Any, db: Any, settings: Settings, tenant: Tenant, number: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    from omnistream.messages import service as messages

    calls: list[int] = []
    real = messages.ingest_inbound_many

    async def counted(db: Any, inbounds: Any) -> Any:
        calls.append(len(inbounds))
        return await real(db, inbounds)

    monkeypatch.setattr(messages, "ingest_inbound_many", counted)
    await asyncio.gather(
        *(post_meta(client, whatsapp(number, messages=[wa_text(f"m{i}", sender=f"1631555{i:04d}")])) for i in range(40))
    )
    await drain(arq, db, settings)
    assert calls == [40]
    assert len(await conversations_of(client, tenant, per_page=100)) == 40


# ---------------------------------------------------------------- the parsers never raise

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=30,
)
KEYS = st.sampled_from(
    ["object", "entry", "id", "changes", "value", "field", "messages", "statuses", "metadata", "phone_number_id",
     "from", "type", "text", "body", "timestamp", "messaging", "sender", "recipient", "message", "mid", "postback",
     "delivery", "read", "reaction", "errors", "contacts", "attachments", "payload", "status"]
)  # fmt: skip
META_LIKE = st.recursive(
    st.none() | st.integers() | st.text(max_size=10) | st.sampled_from(["whatsapp_business_account", "page", "text"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(KEYS, children, max_size=6),
    max_leaves=40,
)


def assert_clean(parsed: Any) -> None:
    assert isinstance(parsed, list)
    for item in parsed:
        assert isinstance(item, ParsedMessage | ParsedStatus | ParsedAccountEvent | Skipped)
    msgspec.json.encode(parsed)  # what is parsed can be queued


@hypothesis_settings(max_examples=300, deadline=None)
@given(body=JSON | META_LIKE)
def test_the_parsers_return_items_or_skips_for_any_json(body: Any) -> None:
    for parse in (whatsapp_parser.parse, messenger_parser.parse):
        assert_clean(parse(body))


def _mutations(base: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A real-shaped payload with one value somewhere replaced by anything."""

    def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        found = [prefix]
        if isinstance(value, dict):
            for key, item in value.items():
                found += paths(item, (*prefix, key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                found += paths(item, (*prefix, index))
        return found

    def replace(path: tuple[Any, ...], new: Any) -> Any:
        copy = json.loads(json.dumps(base))
        if not path:
            return new
        target = copy
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = new
        return copy

    return st.tuples(st.sampled_from(paths(base)), JSON).map(lambda pair: replace(*pair))


WHATSAPP_SAMPLE = whatsapp("1234", messages=[item for item, _, _ in EVERY_KIND], statuses=[
    wa_status("wamid.x", "failed", errors=[{"code": 131026, "title": "Undeliverable"}]),
    wa_status("wamid.y", "read", conversation={"id": "c", "origin": {"type": "service"}}, pricing={"billable": False}),
])  # fmt: skip
PAGE_SAMPLE = page_event("page", "55", [
    page_message("55", "66", {"text": "hi", "quick_reply": {"payload": "Q"}}),
    page_message("55", "66", {"attachments": [{"type": "file", "payload": {"url": "https://x"}}]}),
    {"sender": {"id": "66"}, "recipient": {"id": "55"}, "timestamp": 1, "delivery": {"mids": ["m_1"], "watermark": 2}},
    {"sender": {"id": "66"}, "recipient": {"id": "55"}, "timestamp": 1, "read": {"watermark": 2}},
    {"sender": {"id": "66"}, "recipient": {"id": "55"}, "timestamp": 1,
     "reaction": {"mid": "m_1", "action": "react", "emoji": "x", "reaction": "love"}},
])  # fmt: skip


@hypothesis_settings(max_examples=300, deadline=None)
@given(body=_mutations(WHATSAPP_SAMPLE) | _mutations(PAGE_SAMPLE))
def test_the_parsers_survive_any_change_to_a_real_payload(body: Any) -> None:
    for parse in (whatsapp_parser.parse, messenger_parser.parse):
        assert_clean(parse(body))


@hypothesis_settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(body=_mutations(WHATSAPP_SAMPLE))
async def test_any_signed_payload_is_a_200_or_a_400(client: AsyncTestClient, number: str, body: Any) -> None:
    body = json.loads(json.dumps(body).replace('"1234"', json.dumps(number)))
    response = await post_meta(client, body)
    assert response.status_code in (200, 400), response.text


def test_the_parsers_sort_every_item_into_one_kind() -> None:
    parsed: list[Parsed] = whatsapp_parser.parse(WHATSAPP_SAMPLE)
    kinds = [type(item).__name__ for item in parsed]
    assert (kinds.count("ParsedMessage"), kinds.count("ParsedStatus")) == (len(EVERY_KIND), 2)
    failed = next(i for i in parsed if isinstance(i, ParsedStatus) and i.update.status == "failed")
    assert (failed.update.error_code, failed.update.error_message) == ("131026", "Undeliverable")
    page = messenger_parser.parse(PAGE_SAMPLE)
    assert [type(i).__name__ for i in page] == ["ParsedMessage", "ParsedMessage", "ParsedStatus", "Skipped",
                                                "ParsedMessage"]  # fmt: skip


async def test_template_reviews_and_number_quality_reach_the_business_accounts_tenant(
    client: AsyncTestClient, arq: Any, db: Any, database: str, settings: Settings, tenant: Tenant,
    other_tenant: Tenant,
) -> None:  # fmt: skip
    account_id = await connect_account(
        database, settings, tenant.id, "whatsapp", phone_id(), app_secret=APP_SECRET, business_account_id="987654",
        display_name="+1 555-078-3881",
    )  # fmt: skip
    pending = await approved_template(
        database, tenant.id, "order_update", "en_US", status="PENDING", business_account_id="987654"
    )
    rejected = await approved_template(
        database, tenant.id, "promo", "en_US", status="PENDING", business_account_id="987654"
    )
    # Another tenant's template of the same name, on its own business account: untouched.
    theirs = await approved_template(
        database, other_tenant.id, "order_update", "en_US", status="PENDING", business_account_id="111"
    )
    news = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "987654", "time": 1700000000, "changes": [
            {"field": "message_template_status_update",
             "value": {"event": "APPROVED", "message_template_id": 5, "message_template_name": "order_update",
                       "message_template_language": "en_US", "reason": None}},
            {"field": "message_template_status_update",
             "value": {"event": "REJECTED", "message_template_id": 6, "message_template_name": "promo",
                       "message_template_language": "en_US", "reason": "INCORRECT_CATEGORY"}},
            {"field": "phone_number_quality_update",
             "value": {"display_phone_number": "15550783881", "event": "FLAGGED", "current_limit": "TIER_1K"}},
        ]}],
    }  # fmt: skip
    response = await post_meta(client, news)
    assert response.json() == {"received": 3, "queued": 3, "ignored": 0}
    await drain(arq, db, settings)

    async def template(who: Tenant, template_id: Any) -> dict[str, Any]:
        answer = await client.get(f"/api/wa-templates/{template_id}", headers=who.headers)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    approved = await template(tenant, pending)
    assert (approved["status"], approved["provider_template_id"]) == ("APPROVED", "5")
    refused = await template(tenant, rejected)
    assert (refused["status"], refused["rejected_reason"]) == ("REJECTED", "INCORRECT_CATEGORY")
    assert (await template(other_tenant, theirs))["status"] == "PENDING"
    account = await client.get(f"/api/integration-accounts/{account_id}", headers=tenant.headers)
    assert account.json()["quality"] == {"event": "FLAGGED", "current_limit": "TIER_1K"}


# ---------------------------------------------------------------- email

MAILBOX_SECRET = "mailbox-webhook-secret"


@pytest.fixture
async def mailbox(database: str, settings: Settings, tenant: Tenant) -> str:
    address = f"support-{uuid4().hex[:6]}@shop.example"
    await connect_account(database, settings, tenant.id, "email", address, secret=MAILBOX_SECRET, access_token=None)
    return address


def email(to: str, sender: str = "Kerry Fisher <kerry@customer.example>", **fields: Any) -> dict[str, Any]:
    return {
        "from": sender,
        "to": [to],
        "subject": "Damaged parcel",
        "text": "The box arrived crushed.",
        "message_id": f"<{uuid4().hex}@customer.example>",
        **fields,
    }


async def post_email(client: AsyncTestClient, body: Any, secret: str = MAILBOX_SECRET) -> Any:
    raw, headers = signed(body, secret, header="X-OmniStream-Signature")
    return await client.post("/api/webhooks/email", content=raw, headers=headers)


async def test_an_email_becomes_a_conversation_and_a_reply_joins_it(
    client: AsyncTestClient, arq: Any, db: Any, settings: Settings, tenant: Tenant, mailbox: str
) -> None:
    first = email(mailbox.upper())
    assert (await post_email(client, first)).json() == {"received": 1, "queued": 1, "ignored": 0}
    # A colleague of the customer answers the thread from another address.
    reply = email(mailbox, sender="Sam <sam@customer.example>", text="Photos attached soon.",
                  in_reply_to=first["message_id"], references=[first["message_id"]])  # fmt: skip
    await drain(arq, db, settings)
    await post_email(client, reply)
    await drain(arq, db, settings)
    conversation = await only_conversation(client, tenant)
    assert conversation["channel"] == "email"
    stored = await messages_of(client, tenant, conversation["id"])
    assert [m["text"] for m in stored] == ["The box arrived crushed.", "Photos attached soon."]
    assert stored[0]["content"]["email"]["subject"] == "Damaged parcel"
    assert stored[1]["content"]["email"]["from"] == "Sam <sam@customer.example>"
    # A new email from Sam, answering nothing, is Sam's own conversation.
    await post_email(client, email(mailbox, sender="sam@customer.example", subject="Another thing"))
    await drain(arq, db, settings)
    assert len(await conversations_of(client, tenant)) == 2


async def test_an_email_with_a_wrong_signature_is_401(
    client: AsyncTestClient, arq: Any, settings: Settings, mailbox: str
) -> None:
    problem(await post_email(client, email(mailbox), secret="guess"), 401)
    raw = json.dumps(email(mailbox)).encode()
    problem(await client.post("/api/webhooks/email", content=raw, headers={"Content-Type": "application/json"}), 401)
    assert await inbox.backlog(arq, settings.redis_prefix) == 0


async def test_an_email_for_an_unknown_mailbox_is_ignored(client: AsyncTestClient, mailbox: str) -> None:
    response = await post_email(client, email("nobody@elsewhere.example"))
    assert response.json() == {"received": 1, "queued": 0, "ignored": 1}


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"to": []}, 400),
        ({"message_id": ""}, 400),
        ({"attachments": [{"filename": "a.txt", "content": "%%% not base64"}]}, 400),
        ({"unexpected": 1}, 400),
        ({"from": "no address here"}, 422),
    ],
)
async def test_a_malformed_email_is_refused(
    client: AsyncTestClient, arq: Any, settings: Settings, mailbox: str, change: dict[str, Any], status: int
) -> None:
    problem(await post_email(client, email(mailbox) | change), status)
    assert await inbox.backlog(arq, settings.redis_prefix) == 0


async def test_email_attachments_are_stored_as_media(
    client: AsyncTestClient, arq: Any, db: Any, settings: Settings, tenant: Tenant, mailbox: str
) -> None:
    import base64

    pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    attachment = {"filename": "label.pdf", "content_type": "application/pdf", "content": base64.b64encode(pdf).decode()}
    body = email(mailbox, attachments=[attachment])
    await post_email(client, body)
    await drain(arq, db, settings)
    conversation = await only_conversation(client, tenant)
    [message] = await messages_of(client, tenant, conversation["id"])
    [attachment] = message["content"]["attachments"]
    assert (attachment["filename"], attachment["size_bytes"]) == ("label.pdf", len(pdf))
    download = await client.get(f"/api/media/{attachment['media_id']}", headers=tenant.headers)
    assert download.content == pdf


async def test_a_tenant_cannot_post_into_another_tenants_mailbox(
    client: AsyncTestClient, database: str, settings: Settings, other_tenant: Tenant, mailbox: str, arq: Any
) -> None:
    theirs = f"help-{uuid4().hex[:6]}@other.example"
    await connect_account(database, settings, other_tenant.id, "email", theirs, secret="their-mailbox-secret")
    problem(await post_email(client, email(mailbox), secret="their-mailbox-secret"), 401)
    assert await inbox.backlog(arq, settings.redis_prefix) == 0
