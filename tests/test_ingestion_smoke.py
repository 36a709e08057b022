from __future__ import annotations

from litestar.testing import AsyncTestClient

from tests.conftest import Tenant, ingest


async def test_ingest_then_list(client: AsyncTestClient, tenant: Tenant, db) -> None:
    first = await ingest(db, tenant, "I need help with my order", external_id="6281234")
    again = await ingest(db, tenant, "anyone?", external_id="6281234")
    assert first.conversation_created
    assert not again.conversation_created
    assert again.conversation_id == first.conversation_id
    response = await client.get("/api/conversations", headers=tenant.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == 1
    conv = body["conversations"][0]
    assert conv["message_count"] == 2
    assert conv["unread_count"] == 2
    msgs = await client.get(f"/api/conversations/{conv['id']}/messages", headers=tenant.headers)
    assert msgs.status_code == 200, msgs.text
    assert [m["text"] for m in msgs.json()["messages"]] == ["anyone?", "I need help with my order"]
    search = await client.get("/api/messages/search", params={"q": "order"}, headers=tenant.headers)
    assert search.status_code == 200, search.text
    assert search.json()["messages"][0]["snippet"] == "I need help with my <mark>order</mark>"
    sent = await client.post(
        f"/api/conversations/{conv['id']}/messages", json={"text": "On it!"}, headers=tenant.headers
    )
    assert sent.status_code == 201, sent.text
    assert sent.json()["status"] == "queued"
