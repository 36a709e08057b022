"""Outbound delivery through the real channels' stand-ins: the Graph API stand-in for WhatsApp,
Messenger and Instagram, an aiosmtpd sink for email. What Meta and the mail server receive, how
refusals and throttling end up on the message, and the lease that keeps a message to one send."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import msgspec
import pytest
from arq import Retry
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from omnistream.config import Settings
from omnistream.db import Database
from omnistream.messages import repository
from omnistream.messages.tasks import MAX_ATTEMPTS, deliver_message, lease_for
from tests.conftest import Tenant, ingest
from tests.standins import GraphStandIn, SmtpSink
from tests.wa_template_helpers import approved_template
from tests.webhook_helpers import connect_account, phone_id


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.redis_url)
    try:
        yield client
    finally:
        await client.aclose()


async def superuser(database: str, sql: str, *args: Any) -> Any:
    conn = await asyncpg.connect(database)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


class Thread:
    """A customer's conversation on a connected account, as an agent answers it."""

    def __init__(
        self, client: AsyncTestClient, tenant: Tenant, redis: Redis, conversation_id: UUID, account_ref: str
    ) -> None:
        self.client, self.tenant, self.redis = client, tenant, redis
        self.conversation_id, self.account_ref = conversation_id, account_ref

    async def reply(self, **body: Any) -> str:
        response = await self.client.post(
            f"/api/conversations/{self.conversation_id}/messages", json=body, headers=self.tenant.headers
        )
        assert response.status_code == 201, response.text
        message_id = str(response.json()["id"])
        await self.redis.delete(f"arq:job:deliver:{message_id}")  # the test runs the job itself
        return message_id

    async def message(self, message_id: str) -> dict[str, Any]:
        """The message as the messages API shows it."""
        response = await self.client.get(
            f"/api/conversations/{self.conversation_id}/messages", headers=self.tenant.headers
        )
        assert response.status_code == 200, response.text
        return next(m for m in response.json()["messages"] if m["id"] == message_id)


async def thread(
    client: AsyncTestClient,
    tenant: Tenant,
    db: Database,
    database: str,
    settings: Settings,
    redis: Redis,
    channel: str = "whatsapp",
    *,
    customer: str | None = None,
    account_ref: str | None = None,
    **inbound: Any,
) -> Thread:
    account_ref = account_ref or phone_id()
    account_id = await connect_account(database, settings, tenant.id, channel, account_ref, access_token="EAAG-page")
    customer = customer or {"whatsapp": f"1631555{uuid4().int % 10**4:04d}", "email": "kerry@example.com"}.get(
        channel, f"{uuid4().int % 10**16}"
    )
    result = await ingest(db, tenant, "hello", channel=channel, external_id=customer, account_id=account_id, **inbound)
    return Thread(client, tenant, redis, result.conversation_id, account_ref)


@pytest.fixture
def ctx(db: Database, settings: Settings) -> dict[str, Any]:
    """What the worker hands a job (its first try)."""
    return {"db": db, "settings": settings, "job_try": 1}


@pytest.fixture
async def whatsapp(
    client: AsyncTestClient, tenant: Tenant, db: Database, database: str, settings: Settings, redis: Redis
) -> Thread:
    return await thread(client, tenant, db, database, settings, redis, "whatsapp", customer="16315551234")


def sent_to(graph: GraphStandIn, account_ref: str) -> list[dict[str, Any]]:
    return graph.requests(path_contains=f"/{account_ref}/messages", method="POST")


# ---------------------------------------------------------------- WhatsApp


WHATSAPP_CASES = [
    (
        {"text": "Your order shipped"},
        {"type": "text", "text": {"body": "Your order shipped"}},
    ),
    (
        {"text": "Track it at https://acme.test/t/1"},
        {"type": "text", "text": {"body": "Track it at https://acme.test/t/1", "preview_url": True}},
    ),
    (
        {"type": "image", "text": "the receipt", "media": {"url": "https://cdn.acme.test/r.png"}},
        {"type": "image", "image": {"link": "https://cdn.acme.test/r.png", "caption": "the receipt"}},
    ),
    (
        {"type": "audio", "media": {"url": "https://cdn.acme.test/a.ogg", "mime_type": "audio/ogg"}},
        {"type": "audio", "audio": {"link": "https://cdn.acme.test/a.ogg"}},
    ),
    (
        {"type": "video", "media": {"url": "https://cdn.acme.test/v.mp4"}},
        {"type": "video", "video": {"link": "https://cdn.acme.test/v.mp4"}},
    ),
    (
        {"type": "document", "text": "invoice", "media": {"url": "https://cdn.acme.test/i.pdf", "filename": "i.pdf"}},
        {
            "type": "document",
            "document": {"link": "https://cdn.acme.test/i.pdf", "caption": "invoice", "filename": "i.pdf"},
        },
    ),
    (
        {"type": "location", "location": {"latitude": -6.2, "longitude": 106.8, "name": "Shop", "address": "Jl. 1"}},
        {"type": "location", "location": {"latitude": -6.2, "longitude": 106.8, "name": "Shop", "address": "Jl. 1"}},
    ),
    (
        {
            "type": "template",
            "template": {
                "name": "order_update",
                "language": "pt_BR",
                "components": [{"type": "body", "parameters": [{"type": "text", "text": "42"}]}],
            },
        },
        {
            "type": "template",
            "template": {
                "name": "order_update",
                "language": {"code": "pt_BR"},
                "components": [{"type": "body", "parameters": [{"type": "text", "text": "42"}]}],
            },
        },
    ),
    (
        {"type": "template", "template": {"name": "hello_world", "language": "en_US"}},
        {"type": "template", "template": {"name": "hello_world", "language": {"code": "en_US"}}},
    ),
]


@pytest.mark.parametrize(("sent", "expected"), WHATSAPP_CASES, ids=lambda case: str(case.get("type", "text")))
async def test_each_whatsapp_type_reaches_the_cloud_api_in_its_shape(
    whatsapp: Thread, ctx: dict[str, Any], graph: GraphStandIn, database: str, sent: dict[str, Any],
    expected: dict[str, Any],
) -> None:  # fmt: skip
    # Templates are sent only when known here and approved (their parameters are checked first).
    await approved_template(
        database, whatsapp.tenant.id, "order_update", "pt_BR", [{"type": "BODY", "text": "Order {{1}}"}]
    )
    await approved_template(database, whatsapp.tenant.id, "hello_world", "en_US")
    message_id = await whatsapp.reply(**sent)
    assert await deliver_message(ctx, whatsapp.tenant.id, message_id) == "sent"

    [request] = sent_to(graph, whatsapp.account_ref)
    assert request["authorization"] == "Bearer EAAG-page"
    assert request["body"] == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "16315551234",
        **expected,
    }
    stored = await whatsapp.message(message_id)
    assert stored["status"] == "sent"
    assert stored["provider_message_id"].startswith("wamid.")
    assert stored["sent_at"] is not None


@pytest.mark.parametrize(
    ("kind", "content"),
    [
        (
            "interactive",
            {
                "type": "button",
                "body": {"text": "Did that help?"},
                "action": {"buttons": [{"type": "reply", "reply": {"id": "yes", "title": "Yes"}}]},
            },
        ),
        ("reaction", {"message_id": "wamid.HBgLcustomer", "emoji": "\U0001f44d"}),
        ("sticker", None),
    ],
)
async def test_interactive_reaction_and_sticker_messages_go_out_as_meta_defines_them(
    whatsapp: Thread, ctx: dict[str, Any], graph: GraphStandIn, database: str, kind: str, content: Any
) -> None:
    """Messages other areas store in Meta's own shape (not sendable through the API's body)."""
    message_id = await whatsapp.reply(text="placeholder")
    stored_content = {"media": {"url": "https://cdn.acme.test/s.webp"}} if kind == "sticker" else {kind: content}
    await superuser(
        database,
        "UPDATE messages SET type = $2, text = NULL, content = $3::jsonb WHERE id = $1",
        UUID(message_id),
        kind,
        json.dumps(stored_content),
    )
    assert await deliver_message(ctx, whatsapp.tenant.id, message_id) == "sent"
    [request] = sent_to(graph, whatsapp.account_ref)
    expected = {"link": "https://cdn.acme.test/s.webp"} if kind == "sticker" else content
    assert (request["body"]["type"], request["body"][kind]) == (kind, expected)


async def test_a_message_whose_content_lacks_what_its_type_needs_fails_without_a_request(
    whatsapp: Thread, ctx: dict[str, Any], graph: GraphStandIn, database: str
) -> None:
    message_id = await whatsapp.reply(text="placeholder")
    await superuser(database, "UPDATE messages SET type = 'interactive', text = NULL WHERE id = $1", UUID(message_id))
    assert await deliver_message(ctx, whatsapp.tenant.id, message_id) == "failed"
    assert sent_to(graph, whatsapp.account_ref) == []
    assert (await whatsapp.message(message_id))["error_code"] == "invalid_content"


# ---------------------------------------------------------------- Messenger and Instagram


@pytest.mark.parametrize("channel", ["messenger", "instagram"])
async def test_messenger_and_instagram_send_to_the_scoped_id_with_the_page_token(
    client: AsyncTestClient,
    tenant: Tenant,
    db: Database,
    database: str,
    settings: Settings,
    redis: Redis,
    ctx: dict[str, Any],
    graph: GraphStandIn,
    channel: str,
) -> None:
    page = await thread(client, tenant, db, database, settings, redis, channel, customer="6543210987654321")
    text_id = await page.reply(text="Hello from the shop")
    image_id = await page.reply(type="image", text="your receipt", media={"url": "https://cdn.acme.test/r.png"})
    place_id = await page.reply(type="location", location={"latitude": 1.5, "longitude": 2.25, "name": "Shop"})
    for message_id in (text_id, image_id, place_id):
        assert await deliver_message(ctx, tenant.id, message_id) == "sent"

    requests = sent_to(graph, page.account_ref)
    assert {r["authorization"] for r in requests} == {"Bearer EAAG-page"}
    recipient = {"recipient": {"id": "6543210987654321"}, "messaging_type": "RESPONSE"}
    assert [r["body"] for r in requests] == [
        {**recipient, "message": {"text": "Hello from the shop"}},
        {
            **recipient,
            "message": {
                "attachment": {"type": "image", "payload": {"url": "https://cdn.acme.test/r.png", "is_reusable": True}}
            },
        },
        {**recipient, "message": {"text": "your receipt"}},  # the caption follows its picture
        {**recipient, "message": {"text": "Shop\nhttps://maps.google.com/?q=1.5,2.25"}},
    ]
    stored = await page.message(image_id)
    assert (stored["status"], stored["provider_message_id"][:6]) == ("sent", "m_FAKE")


async def test_quick_replies_ride_under_the_last_bubble(
    client: AsyncTestClient,
    tenant: Tenant,
    db: Database,
    database: str,
    settings: Settings,
    redis: Redis,
    ctx: dict[str, Any],
    graph: GraphStandIn,
) -> None:
    page = await thread(client, tenant, db, database, settings, redis, "messenger", customer="7000000000000001")
    message_id = await page.reply(text="Pick a colour")
    quick = [{"content_type": "text", "title": "Blue", "payload": "COLOR_BLUE"}]
    await superuser(
        database, "UPDATE messages SET content = $2::jsonb WHERE id = $1", UUID(message_id),
        json.dumps({"quick_replies": quick}),
    )  # fmt: skip
    assert await deliver_message(ctx, tenant.id, message_id) == "sent"
    [request] = sent_to(graph, page.account_ref)
    assert request["body"]["message"] == {"text": "Pick a colour", "quick_replies": quick}


async def test_a_template_on_messenger_fails_as_unsupported(
    client: AsyncTestClient,
    tenant: Tenant,
    db: Database,
    database: str,
    settings: Settings,
    redis: Redis,
    ctx: dict[str, Any],
    graph: GraphStandIn,
) -> None:
    page = await thread(client, tenant, db, database, settings, redis, "messenger", customer="7000000000000002")
    message_id = await page.reply(type="template", template={"name": "hello_world", "language": "en"})
    assert await deliver_message(ctx, tenant.id, message_id) == "failed"
    assert sent_to(graph, page.account_ref) == []
    stored = await page.message(message_id)
    assert (stored["status"], stored["error_code"]) == ("failed", "unsupported_message_type")


# ---------------------------------------------------------------- email


async def mailbox(
    client: AsyncTestClient,
    tenant: Tenant,
    db: Database,
    database: str,
    settings: Settings,
    redis: Redis,
    smtp_settings: dict[str, Any] | None,
    **inbound: Any,
) -> Thread:
    address = f"support-{uuid4().hex[:6]}@acme.test"
    mail = await thread(client, tenant, db, database, settings, redis, "email", account_ref=address, **inbound)
    await superuser(
        database,
        "UPDATE integration_accounts SET settings = $2::jsonb, display_name = 'Acme Support' "
        "WHERE tenant_id = $1 AND external_id = $3",
        UUID(tenant.id),
        json.dumps({"smtp": smtp_settings} if smtp_settings else {}),
        address,
    )
    return mail


async def test_an_email_reply_arrives_threaded_under_the_customers_email(
    client: AsyncTestClient,
    tenant: Tenant,
    db: Database,
    database: str,
    settings: Settings,
    redis: Redis,
    ctx: dict[str, Any],
    smtp: SmtpSink,
) -> None:
    server = {
        "host": smtp.host,
        "port": smtp.port,
        "username": "mailer",
        "password_encrypted": settings.secrets.seal("smtp-pass-1"),
        "from_address": "help@acme.test",
        "starttls": False,
    }
    customer_email = {
        "from": "Kerry <kerry@example.com>",
        "subject": "Where is my order?",
        "message_id": "<c2@example.com>",
        "in_reply_to": "<c1@example.com>",
        "references": ["<c1@example.com>"],
    }
    mail = await mailbox(
        client, tenant, db, database, settings, redis, server,
        content={"email": customer_email}, provider_message_id="<c2@example.com>",
    )  # fmt: skip
    message_id = await mail.reply(text="It ships tomorrow.")
    assert await deliver_message(ctx, tenant.id, message_id) == "sent"

    [received] = smtp.messages()
    assert received.envelope_to == ["kerry@example.com"]
    assert received["From"] == "Acme Support <help@acme.test>"
    assert received["To"] == "kerry@example.com"
    assert received["Subject"] == "Re: Where is my order?"
    assert received["In-Reply-To"] == "<c2@example.com>"
    assert received["References"] == "<c1@example.com> <c2@example.com>"
    assert received.get_content().strip() == "It ships tomorrow."
    assert smtp.logins == [("mailer", "smtp-pass-1")]  # the sealed password, opened for the server only
    stored = await mail.message(message_id)
    assert stored["status"] == "sent"
    assert stored["provider_message_id"] == received["Message-ID"]
    assert received["Message-ID"].endswith("@acme.test>")


async def test_a_mailbox_without_its_own_server_sends_through_the_platforms(
    client: AsyncTestClient,
    tenant: Tenant,
    db: Database,
    database: str,
    settings: Settings,
    redis: Redis,
    smtp: SmtpSink,
) -> None:
    mail = await mailbox(client, tenant, db, database, settings, redis, None)
    message_id = await mail.reply(type="document", text="Attached.", media={"url": "https://cdn.acme.test/i.pdf",
                                                                             "filename": "invoice.pdf"})  # fmt: skip

    unconfigured = {"db": db, "settings": settings, "job_try": 1}  # OMNISTREAM_SMTP_HOST unset
    assert await deliver_message(unconfigured, tenant.id, message_id) == "failed"
    assert (await mail.message(message_id))["error_code"] == "smtp_not_configured"

    message_id = await mail.reply(type="document", text="Attached.", media={"url": "https://cdn.acme.test/i.pdf",
                                                                             "filename": "invoice.pdf"})  # fmt: skip
    platform = msgspec.structs.replace(settings, smtp_host=smtp.host, smtp_port=smtp.port, smtp_starttls=False)
    assert await deliver_message({"db": db, "settings": platform, "job_try": 1}, tenant.id, message_id) == "sent"
    [received] = smtp.messages()
    assert received["From"] == f"Acme Support <{mail.account_ref}>"
    assert received["Subject"] == "Message from Acme Support"  # a new thread: no email to answer
    assert received["In-Reply-To"] is None
    assert received.get_content().splitlines() == ["Attached.", "", "invoice.pdf: https://cdn.acme.test/i.pdf"]
    assert smtp.logins == []


async def test_a_refused_recipient_fails_for_good_and_a_busy_server_is_tried_again(
    client: AsyncTestClient,
    tenant: Tenant,
    db: Database,
    database: str,
    settings: Settings,
    redis: Redis,
    ctx: dict[str, Any],
    smtp: SmtpSink,
) -> None:
    server = {"host": smtp.host, "port": smtp.port, "starttls": False}
    mail = await mailbox(client, tenant, db, database, settings, redis, server)
    refused = await mail.reply(text="hello?")
    smtp.refuse(550, "5.1.1 No such user here")
    assert await deliver_message(ctx, tenant.id, refused) == "failed"
    stored = await mail.message(refused)
    assert (stored["status"], stored["error_code"]) == ("failed", "smtp_550")
    assert "No such user" in stored["error_message"]

    busy = await mail.reply(text="hello again")
    smtp.refuse(451, "4.3.0 Try again later")
    with pytest.raises(Retry):
        await deliver_message(ctx, tenant.id, busy)
    assert (await mail.message(busy))["status"] == "queued"
    assert await deliver_message(ctx | {"job_try": 2}, tenant.id, busy) == "sent"
    assert len(smtp.messages()) == 1


# ---------------------------------------------------------------- refusals and retries


async def test_a_rate_limit_is_tried_again_after_retry_after_then_sent(
    whatsapp: Thread, ctx: dict[str, Any], graph: GraphStandIn, database: str
) -> None:
    message_id = await whatsapp.reply(text="hello")
    graph.fail("rate_limit", f"/{whatsapp.account_ref}/messages", retry_after=7)
    with pytest.raises(Retry) as retry:
        await deliver_message(ctx, whatsapp.tenant.id, message_id)
    assert retry.value.defer_score == 7000  # Meta's Retry-After, in milliseconds for arq
    waiting = await whatsapp.message(message_id)
    assert (waiting["status"], waiting["error_code"]) == ("queued", "130429")
    [lease] = await superuser(database, "SELECT sending_until FROM messages WHERE id = $1", UUID(message_id))
    assert lease["sending_until"] is None  # released: the retry takes it at once

    assert await deliver_message(ctx | {"job_try": 2}, whatsapp.tenant.id, message_id) == "sent"
    assert len(sent_to(graph, whatsapp.account_ref)) == 2
    sent = await whatsapp.message(message_id)
    assert (sent["status"], sent["error_code"], sent["error_message"]) == ("sent", None, None)


async def test_without_retry_after_the_backoff_grows_with_full_jitter(
    whatsapp: Thread, ctx: dict[str, Any], graph: GraphStandIn
) -> None:
    message_id = await whatsapp.reply(text="hello")
    graph.fail("unavailable", f"/{whatsapp.account_ref}/messages", times=4)
    delays = []
    for attempt in (1, 2, 3, 4):
        with pytest.raises(Retry) as retry:
            await deliver_message(ctx | {"job_try": attempt}, whatsapp.tenant.id, message_id)
        assert retry.value.defer_score is not None
        delays.append(retry.value.defer_score / 1000)
    ceilings = [5 * 2**attempt for attempt in (1, 2, 3, 4)]
    assert all(1 <= delay <= ceiling for delay, ceiling in zip(delays, ceilings, strict=True)), delays
    assert (await whatsapp.message(message_id))["error_code"] == "2"


async def test_after_the_last_attempt_a_throttled_message_fails_with_the_last_error(
    whatsapp: Thread, ctx: dict[str, Any], graph: GraphStandIn
) -> None:
    message_id = await whatsapp.reply(text="hello")
    graph.fail("rate_limit", f"/{whatsapp.account_ref}/messages")
    assert await deliver_message(ctx | {"job_try": MAX_ATTEMPTS}, whatsapp.tenant.id, message_id) == "failed"
    stored = await whatsapp.message(message_id)
    assert (stored["status"], stored["error_code"]) == ("failed", "130429")
    assert stored["error_message"] == "(#130429) Rate limit hit: Cloud API message throughput has been reached."


@pytest.mark.parametrize(
    ("error", "code", "text"),
    [
        (
            "reengagement",
            "131047",
            "(#131047) Re-engagement message: Message failed to send because more than 24 hours have passed "
            "since the customer last replied to this number.",
        ),
        ("expired_token", "190", "Error validating access token: Session has expired."),
        ("invalid_parameter", "100", "(#100) Invalid parameter: Parameter value is not valid"),
    ],
)
async def test_a_permanent_refusal_fails_the_message_with_metas_code_and_text(
    whatsapp: Thread, ctx: dict[str, Any], graph: GraphStandIn, error: str, code: str, text: str
) -> None:
    message_id = await whatsapp.reply(text="hello")
    graph.fail(error, f"/{whatsapp.account_ref}/messages")
    assert await deliver_message(ctx, whatsapp.tenant.id, message_id) == "failed"
    stored = await whatsapp.message(message_id)  # what an agent sees in the conversation
    assert (stored["status"], stored["error_code"], stored["error_message"]) == ("failed", code, text)
    assert stored["failed_at"] is not None
    assert stored["provider_message_id"] is None
    assert len(sent_to(graph, whatsapp.account_ref)) == 1  # never tried again
    assert await deliver_message(ctx | {"job_try": 2}, whatsapp.tenant.id, message_id) == "not queued"


async def test_a_provider_that_does_not_answer_in_time_is_tried_again(
    whatsapp: Thread, db: Database, settings: Settings, graph: GraphStandIn
) -> None:
    impatient = msgspec.structs.replace(settings, graph_api_timeout_seconds=0.3)
    message_id = await whatsapp.reply(text="hello")
    graph.fail("server_error", f"/{whatsapp.account_ref}/messages", delay_seconds=2)
    with pytest.raises(Retry):
        await deliver_message({"db": db, "settings": impatient, "job_try": 1}, whatsapp.tenant.id, message_id)
    assert (await whatsapp.message(message_id))["status"] == "queued"


# ---------------------------------------------------------------- the lease


async def test_two_workers_running_one_message_send_it_once(
    whatsapp: Thread, ctx: dict[str, Any], graph: GraphStandIn
) -> None:
    message_id = await whatsapp.reply(text="only once")
    outcomes = await asyncio.gather(*(deliver_message(ctx, whatsapp.tenant.id, message_id) for _ in range(2)))
    assert sorted(outcomes) == ["not queued", "sent"]
    assert len(sent_to(graph, whatsapp.account_ref)) == 1


async def test_while_a_send_is_in_flight_another_job_leaves_the_message_alone(
    whatsapp: Thread, ctx: dict[str, Any], graph: GraphStandIn
) -> None:
    message_id = await whatsapp.reply(text="slow")
    # The first send waits a second for Meta's answer (a 429); the duplicate job runs meanwhile.
    graph.fail("rate_limit", f"/{whatsapp.account_ref}/messages", delay_seconds=1)
    first = asyncio.create_task(deliver_message(ctx, whatsapp.tenant.id, message_id))
    await asyncio.sleep(0.4)
    assert await deliver_message(ctx, whatsapp.tenant.id, message_id) == "not queued"
    with pytest.raises(Retry):
        await first
    assert len(sent_to(graph, whatsapp.account_ref)) == 1
    # The retry then finds the lease released.
    assert await deliver_message(ctx | {"job_try": 2}, whatsapp.tenant.id, message_id) == "sent"


async def test_a_worker_killed_mid_send_leaves_a_lease_that_runs_out(
    whatsapp: Thread, ctx: dict[str, Any], graph: GraphStandIn, db: Database, settings: Settings, database: str
) -> None:
    message_id = await whatsapp.reply(text="again")
    tenant_id = UUID(whatsapp.tenant.id)
    async with db.tenant(tenant_id) as conn:  # a worker takes the lease, then dies before Meta answers
        assert await repository.claim_for_delivery(conn, tenant_id, UUID(message_id), lease_for(settings)) is not None
    assert lease_for(settings) > timedelta(seconds=settings.graph_api_timeout_seconds)

    assert await deliver_message(ctx, whatsapp.tenant.id, message_id) == "not queued"  # still leased
    assert sent_to(graph, whatsapp.account_ref) == []

    await superuser(
        database, "UPDATE messages SET sending_until = now() - interval '1 second' WHERE id = $1", UUID(message_id)
    )
    assert await deliver_message(ctx, whatsapp.tenant.id, message_id) == "sent"
    assert len(sent_to(graph, whatsapp.account_ref)) == 1
    [row] = await superuser(
        database, "SELECT send_attempts, sending_until FROM messages WHERE id = $1", UUID(message_id)
    )
    assert (row["send_attempts"], row["sending_until"]) == (2, None)


async def test_a_message_whose_sends_never_finish_fails_after_the_last_attempt(
    whatsapp: Thread, ctx: dict[str, Any], graph: GraphStandIn, database: str
) -> None:
    message_id = await whatsapp.reply(text="cursed")
    await superuser(database, "UPDATE messages SET send_attempts = $2 WHERE id = $1", UUID(message_id), MAX_ATTEMPTS)
    assert await deliver_message(ctx, whatsapp.tenant.id, message_id) == "failed"
    assert sent_to(graph, whatsapp.account_ref) == []
    assert (await whatsapp.message(message_id))["error_code"] == "too_many_attempts"


# ---------------------------------------------------------------- accounts


async def test_a_channel_without_an_account_fails_as_not_connected(
    client: AsyncTestClient, tenant: Tenant, db: Database, redis: Redis, ctx: dict[str, Any], graph: GraphStandIn
) -> None:
    inbound = await ingest(db, tenant, "hello", external_id="16315550000")
    unconnected = Thread(client, tenant, redis, inbound.conversation_id, "none")
    message_id = await unconnected.reply(text="anyone?")
    assert await deliver_message(ctx, tenant.id, message_id) == "failed"
    stored = await unconnected.message(message_id)
    assert (stored["status"], stored["error_code"]) == ("failed", "channel_not_connected")
    assert graph.requests(method="POST") == []


async def test_a_disconnected_account_sends_nothing(
    whatsapp: Thread, ctx: dict[str, Any], graph: GraphStandIn, database: str
) -> None:
    message_id = await whatsapp.reply(text="hello")
    await superuser(
        database, "UPDATE integration_accounts SET status = 'disconnected' WHERE external_id = $1", whatsapp.account_ref
    )
    assert await deliver_message(ctx, whatsapp.tenant.id, message_id) == "failed"
    assert (await whatsapp.message(message_id))["error_code"] == "channel_not_connected"
    assert sent_to(graph, whatsapp.account_ref) == []


async def test_another_tenants_job_cannot_send_the_message(
    whatsapp: Thread, ctx: dict[str, Any], graph: GraphStandIn, other_tenant: Tenant
) -> None:
    message_id = await whatsapp.reply(text="mine")
    assert await deliver_message(ctx, other_tenant.id, message_id) == "not queued"
    assert sent_to(graph, whatsapp.account_ref) == []
    assert (await whatsapp.message(message_id))["status"] == "queued"


# ---------------------------------------------------------------- receipts before the send's answer


async def early(database: str, tenant: Tenant, provider_id: str, *statuses: tuple[str, int, str | None]) -> None:
    for status, seconds_ago, code in statuses:
        await superuser(
            database,
            "INSERT INTO early_message_statuses (tenant_id, channel, provider_message_id, status, occurred_at, "
            "error_code, error_message) VALUES ($1, 'whatsapp', $2, $3, now() - make_interval(secs => $4), $5, $6)",
            UUID(tenant.id), provider_id, status, seconds_ago, code, code and "Undeliverable",
        )  # fmt: skip


@pytest.mark.parametrize(
    ("waiting", "status", "error_code"),
    [
        ([("delivered", 5, None), ("read", 2, None)], "read", None),
        ([("read", 2, None), ("failed", 1, "131026")], "read", None),  # a failure after delivery is news of nothing
        ([("failed", 1, "131026")], "failed", "131026"),
        ([("sent", 9, None)], "sent", None),
    ],
)
async def test_receipts_that_came_before_the_sends_answer_apply_when_it_is_recorded(
    whatsapp: Thread, db: Database, database: str, waiting: list[Any], status: str, error_code: str | None
) -> None:
    message_id = await whatsapp.reply(text="quick")
    provider_id = f"wamid.early{uuid4().hex}"
    await early(database, whatsapp.tenant, provider_id, *waiting)
    await early(database, whatsapp.tenant, f"wamid.other{uuid4().hex}", ("read", 1, None))
    tenant_id = UUID(whatsapp.tenant.id)
    async with db.tenant(tenant_id) as conn:
        assert await repository.mark_sent(conn, tenant_id, UUID(message_id), provider_id)

    stored = await whatsapp.message(message_id)
    assert (stored["status"], stored["error_code"], stored["provider_message_id"]) == (status, error_code, provider_id)
    names = {s for s, _, _ in waiting}
    assert (stored["delivered_at"] is not None) == bool(names & {"delivered", "read"})
    assert (stored["read_at"] is not None) == ("read" in names)
    if "delivered" in names:
        assert stored["delivered_at"] < stored["read_at"]
    left = await superuser(
        database, "SELECT provider_message_id FROM early_message_statuses WHERE tenant_id = $1", tenant_id
    )
    [other] = left  # only another message's receipt waits on
    assert other["provider_message_id"].startswith("wamid.other")


async def test_a_mailbox_connected_through_the_api_sends_with_its_smtp_settings(
    client: AsyncTestClient, tenant: Tenant, db: Database, redis: Redis, ctx: dict[str, Any], smtp: SmtpSink
) -> None:
    """The SMTP settings as the integrations API stores them are what the email sender reads."""
    address = f"desk-{uuid4().hex[:6]}@acme.test"
    response = await client.post(
        "/api/integration-accounts",
        json={
            "channel": "email",
            "external_id": address,
            "display_name": "Acme Desk",
            "smtp": {"host": smtp.host, "port": smtp.port, "username": "desk", "password": "pw-2", "starttls": False},
        },
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    account_id = UUID(response.json()["id"])
    inbound = await ingest(db, tenant, "hi", channel="email", external_id="lee@example.com", account_id=account_id)
    mail = Thread(client, tenant, redis, inbound.conversation_id, address)
    message_id = await mail.reply(text="Hello Lee")
    assert await deliver_message(ctx, tenant.id, message_id) == "sent"
    [received] = smtp.messages()
    assert (received["From"], received["To"]) == (f"Acme Desk <{address}>", "lee@example.com")
    assert smtp.logins == [("desk", "pw-2")]
