"""Messages: history, sending replies (validation, the WhatsApp window, delivery jobs), search and delivery."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import msgspec
import pytest
from arq.connections import ArqRedis
from arq.worker import create_worker
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from omnistream.config import Settings
from omnistream.db import Database
from omnistream.messages.tasks import MAX_ATTEMPTS, deliver_message, sweep_queued_messages
from tests.conftest import Tenant, create_agent, ingest, problem
from tests.standins import GraphStandIn
from tests.wa_template_helpers import approved_template
from tests.webhook_helpers import connect_account, phone_id
from workers.settings import WorkerSettings, worker_overrides


def messages_url(conversation_id: UUID | str) -> str:
    return f"/api/conversations/{conversation_id}/messages"


async def list_messages(
    client: AsyncTestClient, headers: dict[str, str], conversation_id: UUID | str, **params: Any
) -> dict[str, Any]:
    response = await client.get(messages_url(conversation_id), params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def conversation(client: AsyncTestClient, tenant: Tenant, conversation_id: UUID | str) -> dict[str, Any]:
    response = await client.get(f"/api/conversations/{conversation_id}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def superuser(database: str, sql: str, *args: Any) -> None:
    """Change what time has changed (as the database owner, outside the app)."""
    conn = await asyncpg.connect(database)
    try:
        await conn.execute(sql, *args)
    finally:
        await conn.close()


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.redis_url)
    try:
        yield client
    finally:
        await client.aclose()


async def delivery_job(redis: Redis, message_id: str) -> dict[str, Any] | None:
    raw = await redis.get(f"arq:job:deliver:{message_id}")
    return None if raw is None else msgspec.msgpack.decode(raw)


async def send(
    client: AsyncTestClient, headers: dict[str, str], conversation_id: UUID | str, **body: Any
) -> httpx.Response:
    return await client.post(messages_url(conversation_id), json=body, headers=headers)


# ------------------------------------------------------------------ history


async def test_list_is_newest_first_and_pages_by_cursor(client: AsyncTestClient, tenant: Tenant, db: Database) -> None:
    first = await ingest(db, tenant, "one", external_id="6281000")
    for text in ("two", "three", "four", "five"):
        await ingest(db, tenant, text, external_id="6281000")
    conversation_id = first.conversation_id

    everything = await list_messages(client, tenant.headers, conversation_id)
    assert [m["text"] for m in everything["messages"]] == ["five", "four", "three", "two", "one"]
    assert (everything["total"], everything["next_cursor"]) == (5, None)

    oldest_first = await list_messages(client, tenant.headers, conversation_id, sort_order="asc")
    assert [m["text"] for m in oldest_first["messages"]] == ["one", "two", "three", "four", "five"]

    seen: list[str] = []
    params: dict[str, Any] = {"per_page": 2}
    while True:
        page = await list_messages(client, tenant.headers, conversation_id, **params)
        assert page["total"] == 5
        assert len(page["messages"]) <= 2
        seen += [m["text"] for m in page["messages"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert seen == ["five", "four", "three", "two", "one"]

    page = await list_messages(client, tenant.headers, conversation_id, per_page=3, sort_order="asc")
    rest = await list_messages(
        client, tenant.headers, conversation_id, per_page=3, sort_order="asc", cursor=page["next_cursor"]
    )
    assert [m["text"] for m in page["messages"] + rest["messages"]] == ["one", "two", "three", "four", "five"]
    assert rest["next_cursor"] is None

    problem(
        await client.get(messages_url(conversation_id), params={"cursor": "yesterday"}, headers=tenant.headers), 400
    )
    problem(await client.get(messages_url(conversation_id), params={"per_page": 101}, headers=tenant.headers), 400)


async def test_list_is_404_for_unknown_and_other_tenants_conversations(
    client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant, db: Database
) -> None:
    mine = await ingest(db, tenant, "secret", external_id="6281001")
    problem(await client.get(messages_url(mine.conversation_id), headers=other_tenant.headers), 404)
    problem(await client.get(messages_url(UUID(int=1)), headers=tenant.headers), 404)
    problem(await send(client, other_tenant.headers, mine.conversation_id, text="hi"), 404)
    assert (await list_messages(client, tenant.headers, mine.conversation_id))["total"] == 1


# ------------------------------------------------------------------ sending


async def test_send_text_is_queued_and_a_delivery_job_enqueued(
    client: AsyncTestClient, tenant: Tenant, db: Database, redis: Redis, settings: Settings
) -> None:
    inbound = await ingest(db, tenant, "hello", external_id="6281002")
    response = await send(client, tenant.headers, inbound.conversation_id, text="Hi! How can I help?")
    assert response.status_code == 201, response.text
    message = response.json()
    try:
        assert message["conversation_id"] == str(inbound.conversation_id)
        assert (message["direction"], message["type"], message["status"]) == ("outbound", "text", "queued")
        assert (message["sender_type"], message["sender_agent_id"]) == ("agent", tenant.admin_id)
        assert message["text"] == "Hi! How can I help?"
        assert message["provider_message_id"] is None
        assert message["content"] == {}

        job = await delivery_job(redis, message["id"])
        assert job is not None, "no delivery job in Redis"
        assert job["f"] == "deliver_message"
        assert job["a"] == [tenant.id, message["id"]]
        queued = await redis.zrange(f"{settings.redis_prefix}:queue", 0, -1)
        assert f"deliver:{message['id']}".encode() in queued

        listed = await list_messages(client, tenant.headers, inbound.conversation_id)
        assert [m["id"] for m in listed["messages"]] == [message["id"], str(inbound.message_id)]
        conv = await conversation(client, tenant, inbound.conversation_id)
        assert conv["message_count"] == 2
        assert conv["unread_count"] == 1  # a reply is not unread
        assert conv["last_message_preview"] == "Hi! How can I help?"
        assert conv["last_outbound_at"] is not None

        logs = await client.get("/api/activity-logs", params={"action": "message.sent"}, headers=tenant.headers)
        entries = logs.json()["activity_logs"]
        assert [e["object_id"] for e in entries] == [message["id"]]
        assert entries[0]["details"] == {"conversation_id": str(inbound.conversation_id), "type": "text"}
    finally:
        await redis.delete(f"arq:job:deliver:{message['id']}")


async def test_send_each_type_stores_what_it_carries(
    client: AsyncTestClient, tenant: Tenant, db: Database, database: str, redis: Redis
) -> None:
    inbound = await ingest(db, tenant, "hello", external_id="6281003")
    await approved_template(database, tenant.id, "order_update", "en_US")
    cases = [
        (
            {
                "type": "image",
                "media": {"url": "https://cdn.example.com/p.png", "mime_type": "image/png"},
                "text": "Look",
            },
            {"media": {"url": "https://cdn.example.com/p.png", "mime_type": "image/png", "filename": None}},
        ),
        (
            {"type": "location", "location": {"latitude": -6.2, "longitude": 106.8, "name": "Office"}},
            {"location": {"latitude": -6.2, "longitude": 106.8, "name": "Office", "address": None}},
        ),
        (
            {"type": "template", "template": {"name": "order_update", "language": "en_US"}},
            {"template": {"name": "order_update", "language": "en_US", "components": []}},
        ),
        ({"type": "text", "text": "x" * 4096}, {}),
    ]
    ids = []
    try:
        for body, content in cases:
            response = await send(client, tenant.headers, inbound.conversation_id, **body)
            assert response.status_code == 201, (body, response.text)
            message = response.json()
            ids.append(message["id"])
            assert (message["type"], message["content"]) == (body["type"], content)
            assert message["text"] == body.get("text")
        assert (await conversation(client, tenant, inbound.conversation_id))["last_message_preview"] == "x" * 200
    finally:
        for message_id in ids:
            await redis.delete(f"arq:job:deliver:{message_id}")


INVALID = [
    ("image without media", {"type": "image", "text": "caption"}, "media"),
    ("text with a location", {"text": "hi", "location": {"latitude": 1, "longitude": 2}}, "location"),
    ("text with media", {"text": "hi", "media": {"url": "https://example.com/a.png"}}, "media"),
    ("location without location", {"type": "location"}, "location"),
    ("template without template", {"type": "template"}, "template"),
    ("text without text", {"type": "text"}, "text"),
    ("audio with text", {"type": "audio", "text": "hi", "media": {"url": "https://example.com/a.ogg"}}, "text"),
    ("bad url", {"type": "image", "media": {"url": "javascript:alert(1)"}}, "url"),
    ("url with spaces", {"type": "document", "media": {"url": "https://example.com/a b.pdf"}}, "url"),
    ("template name pattern", {"type": "template", "template": {"name": "Order Update", "language": "en"}}, "name"),
    ("template language", {"type": "template", "template": {"name": "order_update", "language": "e"}}, "language"),
    ("unknown field", {"text": "hi", "colour": "red"}, "colour"),
    ("unknown type", {"type": "sticker", "text": "hi"}, "type"),
    ("empty text", {"text": ""}, "text"),
    ("blank text", {"text": "   \n "}, "text"),
    ("text too long", {"text": "x" * 5000}, "text"),
    ("latitude out of range", {"type": "location", "location": {"latitude": 91, "longitude": 0}}, "latitude"),
    ("NUL byte", {"text": "a\x00b"}, "text"),
]


# Well-formed, but what a message of its type must (or must not) carry: a rule, so 422.
AGAINST_A_RULE = {
    "image without media",
    "text with a location",
    "text with media",
    "location without location",
    "template without template",
    "text without text",
    "audio with text",
}


@pytest.mark.parametrize(("case", "body", "field"), INVALID, ids=[case[0] for case in INVALID])
async def test_invalid_messages_are_refused_and_nothing_is_stored(
    client: AsyncTestClient, tenant: Tenant, db: Database, case: str, body: dict[str, Any], field: str
) -> None:
    inbound = await ingest(db, tenant, "hello", external_id="6281004")
    status = 422 if case in AGAINST_A_RULE else 400
    error = problem(await send(client, tenant.headers, inbound.conversation_id, **body), status)
    assert field in error["detail"] or any(field in (e.get("field") or "") for e in error.get("errors", []))
    assert (await list_messages(client, tenant.headers, inbound.conversation_id))["total"] == 1
    assert (await conversation(client, tenant, inbound.conversation_id))["message_count"] == 1


async def test_whatsapp_free_form_outside_24_hours_is_refused_pointing_to_templates(
    client: AsyncTestClient, tenant: Tenant, db: Database, database: str, redis: Redis
) -> None:
    inbound = await ingest(db, tenant, "hello", external_id="6281005")
    await approved_template(database, tenant.id, "follow_up", "id")
    conversation_id = inbound.conversation_id
    ids = []
    try:
        # 23 hours after the customer's message: still inside the window.
        await superuser(
            database,
            "UPDATE conversations SET last_inbound_at = now() - interval '23 hours' WHERE id = $1",
            conversation_id,
        )
        inside = await send(client, tenant.headers, conversation_id, text="still in time")
        assert inside.status_code == 201, inside.text
        ids.append(inside.json()["id"])

        await superuser(
            database,
            "UPDATE conversations SET last_inbound_at = now() - interval '25 hours' WHERE id = $1",
            conversation_id,
        )
        for body in ({"text": "too late"}, {"type": "image", "media": {"url": "https://example.com/a.png"}}):
            error = problem(await send(client, tenant.headers, conversation_id, **body), 422)
            assert error["code"] == "whatsapp_session_expired"
            assert "template" in error["detail"]
            assert "24 hours" in error["detail"]
        assert (await list_messages(client, tenant.headers, conversation_id))["total"] == 2

        template = await send(
            client,
            tenant.headers,
            conversation_id,
            type="template",
            template={"name": "follow_up", "language": "id", "components": [{"type": "body", "parameters": []}]},
        )
        assert template.status_code == 201, template.text
        ids.append(template.json()["id"])
        assert template.json()["status"] == "queued"
    finally:
        for message_id in ids:
            await redis.delete(f"arq:job:deliver:{message_id}")


async def test_the_24_hour_window_is_whatsapp_only(
    client: AsyncTestClient, tenant: Tenant, db: Database, database: str, redis: Redis
) -> None:
    inbound = await ingest(db, tenant, "hello", external_id="psid-1", channel="messenger")
    await superuser(
        database,
        "UPDATE conversations SET last_inbound_at = now() - interval '3 days' WHERE id = $1",
        inbound.conversation_id,
    )
    response = await send(client, tenant.headers, inbound.conversation_id, text="late but fine here")
    assert response.status_code == 201, response.text
    await redis.delete(f"arq:job:deliver:{response.json()['id']}")


@pytest.mark.parametrize("status", ["closed", "expired"])
async def test_sending_to_a_closed_or_expired_conversation_is_a_conflict(
    client: AsyncTestClient, tenant: Tenant, db: Database, database: str, status: str
) -> None:
    inbound = await ingest(db, tenant, "hello", external_id="6281006")
    await superuser(database, "UPDATE conversations SET status = $2 WHERE id = $1", inbound.conversation_id, status)
    error = problem(await send(client, tenant.headers, inbound.conversation_id, text="hello?"), 409)
    assert status in error["detail"]
    assert (await list_messages(client, tenant.headers, inbound.conversation_id))["total"] == 1


async def test_an_agent_sends_only_to_conversations_they_can_see(
    client: AsyncTestClient, tenant: Tenant, db: Database, redis: Redis
) -> None:
    agent = await create_agent(client, tenant)
    theirs = await ingest(db, tenant, "hello", external_id="6281007")
    others = await ingest(db, tenant, "hello", external_id="6281008")
    assigned = await client.patch(
        f"/api/conversations/{others.conversation_id}/assign",
        json={"agent_id": tenant.admin_id},
        headers=tenant.headers,
    )
    assert assigned.status_code == 200, assigned.text

    problem(await send(client, agent["headers"], others.conversation_id, text="sneaky"), 404)
    problem(await client.get(messages_url(others.conversation_id), headers=agent["headers"]), 404)
    assert (await list_messages(client, tenant.headers, others.conversation_id))["total"] == 1

    # An unassigned conversation outside any division is everyone's to answer.
    response = await send(client, agent["headers"], theirs.conversation_id, text="I can help")
    assert response.status_code == 201, response.text
    assert response.json()["sender_agent_id"] == agent["id"]
    await redis.delete(f"arq:job:deliver:{response.json()['id']}")


# ------------------------------------------------------------------ search


async def search(client: AsyncTestClient, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    response = await client.get("/api/messages/search", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_search_ranks_best_match_first_with_highlighted_snippets(
    client: AsyncTestClient, tenant: Tenant, db: Database
) -> None:
    weak = await ingest(
        db, tenant, "I would like a refund for the blue shoes I bought last week", external_id="6282001"
    )
    strong = await ingest(db, tenant, "refund refund refund, where is my refund", external_id="6282002")
    await ingest(db, tenant, "thanks, all good now", external_id="6282003")

    result = await search(client, tenant.headers, q="refund")
    assert result["total"] == 2
    hits = result["messages"]
    assert [h["id"] for h in hits] == [str(strong.message_id), str(weak.message_id)]
    assert hits[0]["rank"] > hits[1]["rank"] > 0
    assert "<mark>refund</mark>" in hits[1]["snippet"]
    assert hits[1]["snippet"].replace("<mark>", "").replace("</mark>", "") in hits[1]["text"]
    assert hits[0]["conversation_id"] == str(strong.conversation_id)
    assert hits[0]["direction"] == "inbound"

    # Case does not matter; a phrase must appear as a phrase; a minus excludes.
    assert (await search(client, tenant.headers, q="REFUND"))["total"] == 2
    phrase = await search(client, tenant.headers, q='"blue shoes"')
    assert [h["id"] for h in phrase["messages"]] == [str(weak.message_id)]
    assert "<mark>blue</mark> <mark>shoes</mark>" in phrase["messages"][0]["snippet"]
    assert (await search(client, tenant.headers, q='"shoes blue"'))["total"] == 0
    excluded = await search(client, tenant.headers, q="refund -shoes")
    assert [h["id"] for h in excluded["messages"]] == [str(strong.message_id)]
    assert (await search(client, tenant.headers, q="refund or thanks"))["total"] == 3
    assert (await search(client, tenant.headers, q="nothing-like-this"))["total"] == 0


async def test_search_snippets_escape_html_in_messages(client: AsyncTestClient, tenant: Tenant, db: Database) -> None:
    await ingest(db, tenant, '<script>alert("x")</script> my parcel & <b>box</b> never came', external_id="6282004")
    hit = (await search(client, tenant.headers, q="parcel"))["messages"][0]
    snippet = hit["snippet"]
    assert "<mark>parcel</mark>" in snippet
    assert "<script>" not in snippet
    assert "<b>" not in snippet
    assert "&lt;/script&gt;" in snippet
    assert "&amp; &lt;b&gt;box&lt;/b&gt;" in snippet
    # The only tags left are the highlights.
    assert snippet.replace("<mark>", "").replace("</mark>", "").count("<") == 0
    # The message itself is returned as it was written.
    assert hit["text"].startswith("<script>")

    # A customer who writes highlight tags themselves cannot fake a highlight.
    await ingest(db, tenant, "please <mark>ignore</mark> my order", external_id="6282004")
    faked = (await search(client, tenant.headers, q="order"))["messages"][0]["snippet"]
    assert faked.count("<mark>") == 1
    assert "<mark>order</mark>" in faked
    assert "&lt;mark&gt;ignore&lt;/mark&gt;" in faked


async def test_search_filters(
    client: AsyncTestClient, tenant: Tenant, db: Database, database: str, redis: Redis
) -> None:
    whatsapp = await ingest(db, tenant, "invoice please", external_id="6282005")
    messenger = await ingest(db, tenant, "invoice again", external_id="psid-2", channel="messenger")
    reply = await send(client, tenant.headers, whatsapp.conversation_id, text="your invoice is attached")
    assert reply.status_code == 201, reply.text
    reply_id = reply.json()["id"]
    await redis.delete(f"arq:job:deliver:{reply_id}")
    old = await ingest(db, tenant, "old invoice question", external_id="6282006")
    await superuser(database, "UPDATE messages SET created_at = '2024-01-15T10:00:00Z' WHERE id = $1", old.message_id)

    def ids(result: dict[str, Any]) -> set[str]:
        return {h["id"] for h in result["messages"]}

    assert (await search(client, tenant.headers, q="invoice"))["total"] == 4
    by_channel = await search(client, tenant.headers, q="invoice", channel="messenger")
    assert ids(by_channel) == {str(messenger.message_id)}
    assert by_channel["total"] == 1
    by_conversation = await search(client, tenant.headers, q="invoice", conversation_id=str(whatsapp.conversation_id))
    assert ids(by_conversation) == {str(whatsapp.message_id), reply_id}
    outbound = await search(client, tenant.headers, q="invoice", direction="outbound")
    assert ids(outbound) == {reply_id}
    assert outbound["total"] == 1
    inbound = await search(client, tenant.headers, q="invoice", direction="inbound")
    assert inbound["total"] == 3
    before = await search(client, tenant.headers, q="invoice", created_to="2024-02-01T00:00:00Z")
    assert ids(before) == {str(old.message_id)}
    since = await search(client, tenant.headers, q="invoice", created_from="2024-02-01T00:00:00Z")
    assert ids(since) == {str(whatsapp.message_id), str(messenger.message_id), reply_id}
    window = await search(
        client, tenant.headers, q="invoice", created_from="2024-01-15T10:00:00Z", created_to="2024-01-15T10:00:01Z"
    )
    assert ids(window) == {str(old.message_id)}
    both = await search(client, tenant.headers, q="invoice", channel="whatsapp", direction="inbound")
    assert ids(both) == {str(whatsapp.message_id), str(old.message_id)}

    problem(await client.get("/api/messages/search", params={"q": "x", "channel": "fax"}, headers=tenant.headers), 400)
    problem(
        await client.get("/api/messages/search", params={"q": "x", "direction": "sideways"}, headers=tenant.headers),
        400,
    )
    problem(
        await client.get("/api/messages/search", params={"q": "x", "created_from": "soon"}, headers=tenant.headers), 400
    )


async def test_search_pages(client: AsyncTestClient, tenant: Tenant, db: Database) -> None:
    expected = {
        str((await ingest(db, tenant, f"delivery number {i}", external_id="6282007")).message_id) for i in range(5)
    }
    seen: list[str] = []
    for page in (1, 2, 3):
        result = await search(client, tenant.headers, q="delivery", per_page=2, page=page)
        assert result["total"] == 5
        assert len(result["messages"]) == (2 if page < 3 else 1)
        seen += [h["id"] for h in result["messages"]]
    assert len(seen) == 5
    assert set(seen) == expected
    assert (await search(client, tenant.headers, q="delivery", per_page=2, page=4))["messages"] == []


@pytest.mark.parametrize("params", [{}, {"q": ""}, {"q": "   "}, {"q": "x" * 201}])
async def test_search_needs_something_to_search_for(
    client: AsyncTestClient, tenant: Tenant, params: dict[str, Any]
) -> None:
    # Blank is well-formed but finds nothing to search for: 422; missing or too long: 400.
    status = 422 if params.get("q") == "   " else 400
    error = problem(await client.get("/api/messages/search", params=params, headers=tenant.headers), status)
    assert "q" in error["detail"]
    assert [e["field"] for e in error["errors"]] == ["q"]


async def test_search_of_only_punctuation_finds_nothing_rather_than_failing(
    client: AsyncTestClient, tenant: Tenant, db: Database
) -> None:
    await ingest(db, tenant, "hello !!! ???", external_id="6282008")
    assert (await search(client, tenant.headers, q="!!!"))["total"] == 0
    assert (await search(client, tenant.headers, q='"'))["total"] == 0


async def test_search_respects_agent_visibility_and_tenants(
    client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant, db: Database
) -> None:
    agent = await create_agent(client, tenant)
    supervisor = await create_agent(client, tenant, role="supervisor")
    unrouted = await ingest(db, tenant, "password reset", external_id="6282009")
    mine = await ingest(db, tenant, "password expired", external_id="6282010")
    hidden = await ingest(db, tenant, "password leaked", external_id="6282011")
    for result, assignee in ((mine, agent["id"]), (hidden, tenant.admin_id)):
        response = await client.patch(
            f"/api/conversations/{result.conversation_id}/assign", json={"agent_id": assignee}, headers=tenant.headers
        )
        assert response.status_code == 200, response.text
    foreign = await ingest(db, other_tenant, "password forgotten", external_id="6282009")

    as_agent = await search(client, agent["headers"], q="password")
    assert {h["id"] for h in as_agent["messages"]} == {str(unrouted.message_id), str(mine.message_id)}
    assert as_agent["total"] == 2
    hidden_only = await search(client, agent["headers"], q="password", conversation_id=str(hidden.conversation_id))
    assert (hidden_only["total"], hidden_only["messages"]) == (0, [])

    for headers in (supervisor["headers"], tenant.headers):
        everyone = await search(client, headers, q="password")
        assert {h["id"] for h in everyone["messages"]} == {
            str(unrouted.message_id),
            str(mine.message_id),
            str(hidden.message_id),
        }

    theirs = await search(client, other_tenant.headers, q="password")
    assert [h["id"] for h in theirs["messages"]] == [str(foreign.message_id)]
    assert (await search(client, other_tenant.headers, q="reset"))["total"] == 0


async def test_search_shows_a_divisions_conversations_to_its_members_only(
    client: AsyncTestClient, tenant: Tenant, db: Database
) -> None:
    member = await create_agent(client, tenant)
    colleague = await create_agent(client, tenant)
    outsider = await create_agent(client, tenant)
    division = await client.post(
        "/api/divisions", json={"name": "Refunds", "agent_ids": [member["id"], colleague["id"]]}, headers=tenant.headers
    )
    assert division.status_code == 201, division.text
    queued = await ingest(db, tenant, "refund queued", external_id="6282101")
    routed = await ingest(db, tenant, "refund routed", external_id="6282102")
    unrouted = await ingest(db, tenant, "refund unrouted", external_id="6282103")
    for result, assignee in ((queued, None), (routed, colleague["id"])):
        response = await client.patch(
            f"/api/conversations/{result.conversation_id}/assign",
            json={"agent_id": assignee, "division_id": division.json()["id"]},
            headers=tenant.headers,
        )
        assert response.status_code == 200, response.text

    # Waiting unassigned in the division, or assigned to a colleague in it: for the division's members.
    as_member = await search(client, member["headers"], q="refund")
    assert {h["id"] for h in as_member["messages"]} == {
        str(queued.message_id),
        str(routed.message_id),
        str(unrouted.message_id),
    }
    assert as_member["total"] == 3
    # Outside the division only the conversation routed nowhere is visible, in the hits and the total.
    as_outsider = await search(client, outsider["headers"], q="refund")
    assert [h["id"] for h in as_outsider["messages"]] == [str(unrouted.message_id)]
    assert as_outsider["total"] == 1


# ------------------------------------------------------------------ delivery


async def queued_message(
    client: AsyncTestClient, tenant: Tenant, db: Database, redis: Redis, channel: str = "whatsapp", **body: Any
) -> tuple[Any, dict[str, Any]]:
    inbound = await ingest(db, tenant, "hello", external_id=f"ext-{channel}", channel=channel)
    response = await send(client, tenant.headers, inbound.conversation_id, **(body or {"text": "on its way"}))
    assert response.status_code == 201, response.text
    message = response.json()
    await redis.delete(f"arq:job:deliver:{message['id']}")
    return inbound, message


async def stored(client: AsyncTestClient, tenant: Tenant, conversation_id: UUID, message_id: str) -> dict[str, Any]:
    listed = await list_messages(client, tenant.headers, conversation_id)
    return next(m for m in listed["messages"] if m["id"] == message_id)


# What each channel's sender puts on the wire, refusals, retries and the lease: tests/test_delivery.py.


async def test_delivery_without_a_connected_channel_fails_the_message(
    client: AsyncTestClient, tenant: Tenant, db: Database, redis: Redis, settings: Settings
) -> None:
    inbound, message = await queued_message(client, tenant, db, redis, channel="email")
    outcome = await deliver_message({"db": db, "settings": settings, "job_try": 1}, tenant.id, message["id"])
    assert outcome == "failed"
    after = await stored(client, tenant, inbound.conversation_id, message["id"])
    assert (after["status"], after["error_code"]) == ("failed", "channel_not_connected")
    assert "email" in after["error_message"]
    assert after["failed_at"] is not None
    # A second run of the same job finds nothing to do.
    assert await deliver_message({"db": db, "settings": settings, "job_try": 1}, tenant.id, message["id"]) == (
        "not queued"
    )


async def test_sweeper_re_enqueues_messages_whose_job_was_lost(
    client: AsyncTestClient,
    tenant: Tenant,
    other_tenant: Tenant,
    db: Database,
    database: str,
    redis: Redis,
    arq: ArqRedis,
    settings: Settings,
) -> None:
    _, stale = await queued_message(client, tenant, db, redis)
    _, fresh = await queued_message(client, tenant, db, redis, channel="messenger")
    _, elsewhere = await queued_message(client, other_tenant, db, redis)
    _, sent_long_ago = await queued_message(client, tenant, db, redis, channel="instagram")
    await superuser(
        database,
        "UPDATE messages SET created_at = now() - interval '2 minutes' WHERE id = ANY($1::uuid[])",
        [stale["id"], elsewhere["id"], sent_long_ago["id"]],
    )
    await superuser(database, "UPDATE messages SET status = 'sent' WHERE id = $1", sent_long_ago["id"])
    # An inbound message is never a delivery, however old.
    await superuser(database, "UPDATE messages SET created_at = now() - interval '1 day' WHERE direction = 'inbound'")

    try:
        assert await sweep_queued_messages({"db": db, "redis": arq}) == 2
        stale_job = await delivery_job(redis, stale["id"])
        assert stale_job is not None
        assert (stale_job["f"], stale_job["a"]) == ("deliver_message", [tenant.id, stale["id"]])
        other_job = await delivery_job(redis, elsewhere["id"])
        assert other_job is not None
        assert other_job["a"] == [other_tenant.id, elsewhere["id"]]
        assert await delivery_job(redis, fresh["id"]) is None
        assert await delivery_job(redis, sent_long_ago["id"]) is None
        assert f"deliver:{stale['id']}".encode() in await redis.zrange(f"{settings.redis_prefix}:queue", 0, -1)

        # The re-enqueued job delivers the message (here: no channel connected, so it fails for good).
        assert await deliver_message({"db": db, "settings": settings, "job_try": 1}, tenant.id, stale["id"]) == "failed"
        await redis.delete(f"arq:job:deliver:{stale['id']}")
        assert await sweep_queued_messages({"db": db, "redis": arq}) == 1  # only the other tenant's
    finally:
        for message in (stale, fresh, elsewhere, sent_long_ago):
            await redis.delete(f"arq:job:deliver:{message['id']}")


async def run_worker_until_idle(settings: Settings) -> None:
    """The real worker (its settings, startup and queue), run until its queue is empty."""
    worker = create_worker(
        WorkerSettings, **worker_overrides(settings), burst=True, poll_delay=0.05, handle_signals=False, cron_jobs=None
    )
    try:
        await worker.main()
    finally:
        await worker.close()


async def test_the_worker_delivers_what_the_api_queued(
    client: AsyncTestClient,
    tenant: Tenant,
    db: Database,
    database: str,
    redis: Redis,
    settings: Settings,
    graph: GraphStandIn,
) -> None:
    number = phone_id()
    await connect_account(database, settings, tenant.id, "whatsapp", number)
    inbound = await ingest(db, tenant, "hello", external_id="6283001")
    response = await send(client, tenant.headers, inbound.conversation_id, text="from the worker")
    assert response.status_code == 201, response.text
    message_id = response.json()["id"]
    try:
        await run_worker_until_idle(settings)
        [request] = graph.requests(path_contains=f"/{number}/messages", method="POST")
        assert (request["body"]["to"], request["body"]["text"]["body"]) == ("6283001", "from the worker")
        after = await stored(client, tenant, inbound.conversation_id, message_id)
        assert after["status"] == "sent"
        assert after["provider_message_id"].startswith("wamid.")
    finally:
        await redis.delete(f"arq:job:deliver:{message_id}", f"arq:result:deliver:{message_id}")


async def test_the_worker_runs_the_last_delivery_attempt_and_fails_the_message(
    client: AsyncTestClient,
    tenant: Tenant,
    db: Database,
    database: str,
    redis: Redis,
    settings: Settings,
    arq: ArqRedis,
    graph: GraphStandIn,
) -> None:
    """A message that keeps failing ends failed, not queued forever (arq must allow every attempt)."""
    number = phone_id()
    await connect_account(database, settings, tenant.id, "whatsapp", number)
    graph.fail("rate_limit", f"/{number}/messages", times=MAX_ATTEMPTS)
    inbound, message = await queued_message(client, tenant, db, redis)
    job_id = f"deliver:{message['id']}"
    try:
        job = await arq.enqueue_job("deliver_message", tenant.id, message["id"], _job_id=job_id, _job_try=MAX_ATTEMPTS)
        assert job is not None
        await run_worker_until_idle(settings)
        assert len(graph.requests(path_contains=f"/{number}/messages", method="POST")) == 1
        after = await stored(client, tenant, inbound.conversation_id, message["id"])
        assert (after["status"], after["error_code"]) == ("failed", "130429")
    finally:
        await redis.delete(f"arq:job:{job_id}", f"arq:result:{job_id}", f"arq:retry:{job_id}")
