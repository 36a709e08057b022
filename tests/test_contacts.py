"""Contacts over HTTP: listing and filters, identities, updates and their conversations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
from litestar.testing import AsyncTestClient

from tests.conftest import Tenant, create_agent, headers_of, ingest, problem, refused

CONTACTS = "/api/contacts"


async def new_contact(db: Any, tenant: Tenant, **kwargs: Any) -> str:
    result = await ingest(db, tenant, kwargs.pop("text", "hello"), **kwargs)
    return str(result.contact_id)


async def fetch(client: AsyncTestClient, who: Tenant | dict[str, Any], contact_id: str) -> dict[str, Any]:
    response = await client.get(f"{CONTACTS}/{contact_id}", headers=headers_of(who))
    assert response.status_code == 200, response.text
    return response.json()


async def listing(client: AsyncTestClient, who: Tenant | dict[str, Any], **params: Any) -> dict[str, Any]:
    response = await client.get(CONTACTS, params=params, headers=headers_of(who))
    assert response.status_code == 200, response.text
    return response.json()


def ids(body: dict[str, Any], key: str = "contacts") -> list[str]:
    return [item["id"] for item in body[key]]


async def update(client: AsyncTestClient, who: Tenant | dict[str, Any], contact_id: str, body: Any) -> httpx.Response:
    return await client.patch(f"{CONTACTS}/{contact_id}", json=body, headers=headers_of(who))


async def sql(database: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


# ------------------------------------------------------------------ reading


async def test_a_contact_with_its_identities(client: AsyncTestClient, tenant: Tenant, db: Any, database: str) -> None:
    contact_id = await new_contact(
        db, tenant, external_id="6281999", contact_name="Nina Novak", contact_phone="+6281999"
    )
    contact = await fetch(client, tenant, contact_id)
    assert contact["name"] == "Nina Novak"
    assert contact["phone"] == "+6281999"
    assert contact["identities"] == [{"channel": "whatsapp", "external_id": "6281999"}]
    assert contact["tags"] == []
    assert contact["custom_attributes"] == {}
    assert contact["last_seen_at"] is not None

    # The same person reachable by email as well: both identities, oldest first.
    await sql(
        database,
        "INSERT INTO contact_identities (tenant_id, channel, external_id, contact_id, created_at)"
        " VALUES ($1, 'email', 'nina@example.com', $2, now() + interval '1 second')",
        UUID(tenant.id),
        UUID(contact_id),
    )
    assert (await fetch(client, tenant, contact_id))["identities"] == [
        {"channel": "whatsapp", "external_id": "6281999"},
        {"channel": "email", "external_id": "nina@example.com"},
    ]
    problem(await client.get(f"{CONTACTS}/{uuid4()}", headers=tenant.headers), 404)


async def test_list_newest_first_with_paging(client: AsyncTestClient, tenant: Tenant, db: Any) -> None:
    made = [await new_contact(db, tenant) for _ in range(5)]
    first = await listing(client, tenant, per_page=2)
    assert (ids(first), first["total"]) == (made[::-1][:2], 5)
    second = await listing(client, tenant, per_page=2, cursor=first["next_cursor"])
    third = await listing(client, tenant, per_page=2, cursor=second["next_cursor"])
    assert ids(second) + ids(third) == made[::-1][2:]
    assert third["next_cursor"] is None
    assert ids(await listing(client, tenant, sort_order="asc")) == made
    assert ids(await listing(client, tenant, per_page=2, page=3)) == [made[0]]


async def test_list_by_text_in_name_email_or_phone(client: AsyncTestClient, tenant: Tenant, db: Any) -> None:
    by_name = await new_contact(db, tenant, contact_name="Oscar Quibble")
    by_email = await new_contact(db, tenant, contact_name="P", contact_email="pat@quibblemail.test")
    by_phone = await new_contact(db, tenant, contact_name="R", contact_phone="+44 20 7946 0958")
    assert ids(await listing(client, tenant, q="oscar")) == [by_name]
    assert ids(await listing(client, tenant, q="QUIBBLEMAIL")) == [by_email]
    assert ids(await listing(client, tenant, q="7946")) == [by_phone]
    body = await listing(client, tenant, q="quibble")
    assert (set(ids(body)), body["total"]) == ({by_name, by_email}, 2)
    assert ids(await listing(client, tenant, q="nobody-like-this")) == []


async def test_list_by_tag_and_channel(client: AsyncTestClient, tenant: Tenant, db: Any) -> None:
    tagged = await new_contact(db, tenant)
    on_email = await new_contact(db, tenant, channel="email", external_id="mail@example.com")
    assert (await update(client, tenant, tagged, {"tags": ["VIP"]})).status_code == 200
    assert ids(await listing(client, tenant, tag="vip")) == [tagged]
    assert ids(await listing(client, tenant, tag=" Vip ")) == [tagged]
    assert ids(await listing(client, tenant, tag="other")) == []
    assert ids(await listing(client, tenant, channel="email")) == [on_email]
    assert ids(await listing(client, tenant, channel="whatsapp")) == [tagged]
    assert ids(await listing(client, tenant, channel="instagram")) == []
    refused(await client.get(CONTACTS, params={"channel": "sms"}, headers=tenant.headers))


async def test_list_by_creation_date(client: AsyncTestClient, tenant: Tenant, db: Any, database: str) -> None:
    old = await new_contact(db, tenant)
    new = await new_contact(db, tenant)
    await sql(database, "UPDATE contacts SET created_at = now() - interval '10 days' WHERE id = $1", UUID(old))
    week_ago = (datetime.now(UTC) - timedelta(days=7)).isoformat()
    assert ids(await listing(client, tenant, created_from=week_ago)) == [new]
    assert ids(await listing(client, tenant, created_to=week_ago)) == [old]
    refused(await client.get(CONTACTS, params={"created_from": "last week"}, headers=tenant.headers))
    # A time without an offset, next to one with it: answered, never a crash.
    naive = (datetime.now(UTC) - timedelta(days=7)).replace(tzinfo=None).isoformat()
    response = await client.get(
        CONTACTS, params={"created_from": naive, "created_to": datetime.now(UTC).isoformat()}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    assert ids(response.json()) == [new]


async def test_bad_list_parameters(client: AsyncTestClient, tenant: Tenant) -> None:
    for params in (
        {"per_page": 0},
        {"per_page": 101},
        {"page": -1},
        {"cursor": "nope"},
        {"sort_order": "random"},
        {"q": "x" * 201},
        {"tag": "t" * 51},
    ):
        refused(await client.get(CONTACTS, params=params, headers=tenant.headers))


# ------------------------------------------------------------------ updating


async def test_update_fields_and_normalize(client: AsyncTestClient, tenant: Tenant, db: Any) -> None:
    contact_id = await new_contact(db, tenant, contact_name="Old Name", contact_phone="+111")
    response = await update(
        client,
        tenant,
        contact_id,
        {"name": "  New Name ", "email": "New@Example.COM", "tags": [" Gold ", "gold", "Lead"]},
    )
    assert response.status_code == 200, response.text
    contact = response.json()
    assert contact["name"] == "New Name"
    assert contact["email"] == "new@example.com"
    assert contact["tags"] == ["gold", "lead"]
    assert contact["phone"] == "+111"  # not named, not changed
    assert await fetch(client, tenant, contact_id) == contact

    response = await update(client, tenant, contact_id, {"phone": "+62 812 000", "email": None})
    assert response.status_code == 200, response.text
    assert (response.json()["phone"], response.json()["email"], response.json()["name"]) == (
        "+62 812 000",
        None,
        "New Name",
    )
    response = await update(client, tenant, contact_id, {"phone": None, "tags": []})
    assert response.status_code == 200, response.text
    assert (response.json()["phone"], response.json()["tags"]) == (None, [])


async def test_custom_attributes_merge_and_null_removes(client: AsyncTestClient, tenant: Tenant, db: Any) -> None:
    contact_id = await new_contact(db, tenant)
    response = await update(client, tenant, contact_id, {"custom_attributes": {"plan": "pro", "seats": 3}})
    assert response.status_code == 200, response.text
    assert response.json()["custom_attributes"] == {"plan": "pro", "seats": 3}

    response = await update(
        client, tenant, contact_id, {"custom_attributes": {"seats": 5, "plan": None, "vip": True, "score": 1.5}}
    )
    assert response.status_code == 200, response.text
    assert response.json()["custom_attributes"] == {"seats": 5, "vip": True, "score": 1.5}
    # Removing a key that is not there is harmless; other fields are untouched.
    response = await update(client, tenant, contact_id, {"custom_attributes": {"ghost": None}, "name": "Kim"})
    assert response.status_code == 200, response.text
    assert response.json()["custom_attributes"] == {"seats": 5, "vip": True, "score": 1.5}
    assert (await fetch(client, tenant, contact_id))["custom_attributes"] == {"seats": 5, "vip": True, "score": 1.5}


async def test_bad_updates_are_refused_and_store_nothing(client: AsyncTestClient, tenant: Tenant, db: Any) -> None:
    contact_id = await new_contact(db, tenant, contact_name="Stable", contact_phone="+123")
    before = await fetch(client, tenant, contact_id)
    for body in (
        {"name": "Changed", "email": "not-an-email"},
        {"name": "Changed", "phone": "call me"},
        {"phone": "((((((((("},
        {"phone": "+1-2"},
        {"name": 5},
        {"name": "x" * 201},
        {"name": "a\x00b"},
        {"tags": ["a,b"]},
        {"tags": ["  "]},
        {"tags": ["x" * 51]},
        {"tags": [f"t{i}" for i in range(51)]},
        {"tags": "vip"},
        {"custom_attributes": {"bad key!": 1}},
        {"custom_attributes": {"nested": {"a": 1}}},
        {"custom_attributes": {"list": [1, 2]}},
        {"custom_attributes": {f"k{i}": i for i in range(101)}},
        {"custom_attributes": ["plan"]},
        {"nickname": "Changed"},
        {"name": "Changed", "id": str(uuid4())},
        [],
        "Changed",
    ):
        refused(await update(client, tenant, contact_id, body))
    # A NUL, which PostgreSQL cannot store, is refused by the schema, naming the field.
    nul = problem(await update(client, tenant, contact_id, {"custom_attributes": {"plan": "gold\x00"}}), 400)
    assert [e["field"] for e in nul["errors"]] == ["custom_attributes"]
    refused(
        await client.patch(
            f"{CONTACTS}/{contact_id}",
            content=b'{"name": "Changed"',
            headers=tenant.headers | {"content-type": "application/json"},
        )
    )
    assert await fetch(client, tenant, contact_id) == before
    response = await client.get("/api/activity-logs", params={"action": "contact.updated"}, headers=tenant.headers)
    assert response.json()["activity_logs"] == []


async def test_updates_are_logged(client: AsyncTestClient, tenant: Tenant, db: Any) -> None:
    contact_id = await new_contact(db, tenant)
    assert (await update(client, tenant, contact_id, {"name": "Logged", "tags": ["a"]})).status_code == 200
    response = await client.get(
        "/api/activity-logs", params={"action": "contact.updated", "object_id": contact_id}, headers=tenant.headers
    )
    [entry] = response.json()["activity_logs"]
    assert entry["actor_id"] == tenant.admin_id
    assert entry["object_type"] == "contact"
    assert entry["details"]["changes"] == {"name": "Logged", "tags": ["a"]}


async def test_an_empty_update_changes_and_logs_nothing(client: AsyncTestClient, tenant: Tenant, db: Any) -> None:
    contact_id = await new_contact(db, tenant)
    before = await fetch(client, tenant, contact_id)
    response = await update(client, tenant, contact_id, {})
    assert response.status_code == 200, response.text
    assert response.json() == before
    logs = await client.get(
        "/api/activity-logs", params={"action": "contact.updated", "object_id": contact_id}, headers=tenant.headers
    )
    assert logs.json()["activity_logs"] == []
    assert (await update(client, tenant, str(uuid4()), {})).status_code == 404


async def test_an_agent_reads_and_writes_contacts(client: AsyncTestClient, tenant: Tenant, db: Any) -> None:
    agent = await create_agent(client, tenant)
    contact_id = await new_contact(db, tenant)
    assert ids(await listing(client, agent)) == [contact_id]
    response = await update(client, agent, contact_id, {"name": "Set by agent"})
    assert response.status_code == 200, response.text
    assert (await fetch(client, tenant, contact_id))["name"] == "Set by agent"


# ------------------------------------------------------------------ conversations of a contact


async def test_a_contacts_conversations(client: AsyncTestClient, tenant: Tenant, db: Any) -> None:
    first = await ingest(db, tenant, "first", external_id="62833")
    contact_id = str(first.contact_id)
    closed = await client.patch(
        f"/api/conversations/{first.conversation_id}/status", json={"status": "closed"}, headers=tenant.headers
    )
    assert closed.status_code == 200, closed.text
    second = await ingest(db, tenant, "second", external_id="62833")
    assert second.conversation_id != first.conversation_id
    await ingest(db, tenant, "someone else", external_id="62844")

    response = await client.get(f"{CONTACTS}/{contact_id}/conversations", headers=tenant.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert ids(body, "conversations") == [str(second.conversation_id), str(first.conversation_id)]
    assert body["total"] == 2
    assert {c["contact"]["id"] for c in body["conversations"]} == {contact_id}
    response = await client.get(
        f"{CONTACTS}/{contact_id}/conversations", params={"sort_order": "asc", "per_page": 1}, headers=tenant.headers
    )
    assert ids(response.json(), "conversations") == [str(first.conversation_id)]
    assert response.json()["next_cursor"] is not None
    problem(await client.get(f"{CONTACTS}/{uuid4()}/conversations", headers=tenant.headers), 404)


async def test_an_agent_sees_only_the_contacts_conversations_it_may(
    client: AsyncTestClient, tenant: Tenant, db: Any
) -> None:
    agent = await create_agent(client, tenant)
    colleague = await create_agent(client, tenant)
    first = await ingest(db, tenant, "first", external_id="62855")
    response = await client.patch(
        f"/api/conversations/{first.conversation_id}/assign", json={"agent_id": colleague["id"]}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    response = await client.get(f"{CONTACTS}/{first.contact_id}/conversations", headers=agent["headers"])
    assert response.status_code == 200, response.text
    assert response.json()["conversations"] == []
    response = await client.get(f"{CONTACTS}/{first.contact_id}/conversations", headers=colleague["headers"])
    assert ids(response.json(), "conversations") == [str(first.conversation_id)]


# ------------------------------------------------------------------ tenancy


async def test_another_tenants_contact_is_not_found(
    client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant, db: Any
) -> None:
    foreign = await new_contact(db, other_tenant, contact_name="Theirs")
    await new_contact(db, tenant, contact_name="Ours")
    problem(await client.get(f"{CONTACTS}/{foreign}", headers=tenant.headers), 404)
    problem(await update(client, tenant, foreign, {"name": "Hijacked"}), 404)
    problem(await client.get(f"{CONTACTS}/{foreign}/conversations", headers=tenant.headers), 404)
    assert [c["name"] for c in (await listing(client, tenant))["contacts"]] == ["Ours"]
    assert (await fetch(client, other_tenant, foreign))["name"] == "Theirs"


async def test_malformed_contact_ids(client: AsyncTestClient, tenant: Tenant) -> None:
    for response in (
        await client.get(f"{CONTACTS}/12345", headers=tenant.headers),
        await client.patch(f"{CONTACTS}/not-a-uuid", json={"name": "x"}, headers=tenant.headers),
        await client.get(f"{CONTACTS}/zz/conversations", headers=tenant.headers),
    ):
        assert 400 <= response.status_code < 500, response.text
    assert (await client.get(CONTACTS)).status_code == 401
