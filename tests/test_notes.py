"""Private notes on conversations: agents' remarks, never sent to the contact, changed only by their author."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from litestar.testing import AsyncTestClient

from omnistream.db import Database
from tests.conftest import Tenant, create_agent, ingest, problem


def at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def notes_url(conversation_id: UUID | str) -> str:
    return f"/api/conversations/{conversation_id}/notes"


async def create_note(
    client: AsyncTestClient, headers: dict[str, str], conversation_id: UUID | str, body: str
) -> dict[str, Any]:
    response = await client.post(notes_url(conversation_id), json={"body": body}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def list_notes(
    client: AsyncTestClient, headers: dict[str, str], conversation_id: UUID | str, **params: Any
) -> dict[str, Any]:
    response = await client.get(notes_url(conversation_id), params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def logged(client: AsyncTestClient, tenant: Tenant, action: str) -> list[dict[str, Any]]:
    response = await client.get("/api/activity-logs", params={"action": action}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()["activity_logs"]


async def assign(client: AsyncTestClient, tenant: Tenant, conversation_id: UUID, agent_id: str) -> None:
    response = await client.patch(
        f"/api/conversations/{conversation_id}/assign", json={"agent_id": agent_id}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text


async def test_create_list_update_delete(client: AsyncTestClient, tenant: Tenant, db: Database) -> None:
    conversation = (await ingest(db, tenant, "my parcel is late", external_id="6284001")).conversation_id
    note = await create_note(client, tenant.headers, conversation, "Customer is a VIP; escalate if needed.")
    assert note["conversation_id"] == str(conversation)
    assert (note["author_id"], note["author_name"]) == (tenant.admin_id, "Ada Admin")
    assert note["body"] == "Customer is a VIP; escalate if needed."
    assert abs(at(note["updated_at"]) - at(note["created_at"])) < timedelta(seconds=1)

    listed = await list_notes(client, tenant.headers, conversation)
    assert listed == {"notes": [note], "next_cursor": None, "total": 1}

    response = await client.patch(
        f"/api/notes/{note['id']}", json={"body": "Not a VIP after all."}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    assert (updated["id"], updated["body"]) == (note["id"], "Not a VIP after all.")
    assert updated["created_at"] == note["created_at"]
    assert at(updated["updated_at"]) > at(note["updated_at"])
    assert (await list_notes(client, tenant.headers, conversation))["notes"] == [updated]

    response = await client.delete(f"/api/notes/{note['id']}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"message": "note deleted", "id": note["id"]}
    assert (await list_notes(client, tenant.headers, conversation))["total"] == 0
    problem(await client.delete(f"/api/notes/{note['id']}", headers=tenant.headers), 404)
    problem(await client.patch(f"/api/notes/{note['id']}", json={"body": "again"}, headers=tenant.headers), 404)


async def test_notes_are_private_never_messages(client: AsyncTestClient, tenant: Tenant, db: Database) -> None:
    inbound = await ingest(db, tenant, "hello", external_id="6284002")
    await create_note(client, tenant.headers, inbound.conversation_id, "internal: refund approved")
    messages = await client.get(f"/api/conversations/{inbound.conversation_id}/messages", headers=tenant.headers)
    assert [m["text"] for m in messages.json()["messages"]] == ["hello"]
    conversation = (await client.get(f"/api/conversations/{inbound.conversation_id}", headers=tenant.headers)).json()
    assert (conversation["message_count"], conversation["last_message_preview"]) == (1, "hello")
    found = await client.get("/api/messages/search", params={"q": "refund"}, headers=tenant.headers)
    assert found.json()["total"] == 0


async def test_list_is_newest_first_with_cursor_and_oldest_first(
    client: AsyncTestClient, tenant: Tenant, db: Database
) -> None:
    conversation = (await ingest(db, tenant, "hello", external_id="6284003")).conversation_id
    other = (await ingest(db, tenant, "hello", external_id="6284004")).conversation_id
    for n in range(5):
        await create_note(client, tenant.headers, conversation, f"note {n}")
    await create_note(client, tenant.headers, other, "somewhere else")

    newest = await list_notes(client, tenant.headers, conversation)
    assert [n["body"] for n in newest["notes"]] == ["note 4", "note 3", "note 2", "note 1", "note 0"]
    assert newest["total"] == 5
    oldest = await list_notes(client, tenant.headers, conversation, sort_order="asc")
    assert [n["body"] for n in oldest["notes"]] == ["note 0", "note 1", "note 2", "note 3", "note 4"]

    first = await list_notes(client, tenant.headers, conversation, per_page=2)
    assert [n["body"] for n in first["notes"]] == ["note 4", "note 3"]
    second = await list_notes(client, tenant.headers, conversation, per_page=2, cursor=first["next_cursor"])
    assert [n["body"] for n in second["notes"]] == ["note 2", "note 1"]
    third = await list_notes(client, tenant.headers, conversation, per_page=2, cursor=second["next_cursor"])
    assert [n["body"] for n in third["notes"]] == ["note 0"]
    assert third["next_cursor"] is None

    # Oldest first, the cursor walks forwards.
    pages, cursor = [], None
    while True:
        params = {"per_page": 2, "sort_order": "asc"} | ({"cursor": cursor} if cursor else {})
        page = await list_notes(client, tenant.headers, conversation, **params)
        pages.append([n["body"] for n in page["notes"]])
        cursor = page["next_cursor"]
        if cursor is None or len(pages) > 5:
            break
    assert pages == [["note 0", "note 1"], ["note 2", "note 3"], ["note 4"]]


async def test_only_the_author_or_an_admin_changes_a_note(
    client: AsyncTestClient, tenant: Tenant, db: Database
) -> None:
    author = await create_agent(client, tenant)
    colleague = await create_agent(client, tenant)
    supervisor = await create_agent(client, tenant, role="supervisor")
    conversation = (await ingest(db, tenant, "hello", external_id="6284005")).conversation_id
    note = await create_note(client, author["headers"], conversation, "I will call them back")
    assert (note["author_id"], note["author_name"]) == (author["id"], "Agent One")

    # Everyone who can see the conversation can read it.
    for who in (colleague, supervisor):
        assert [n["id"] for n in (await list_notes(client, who["headers"], conversation))["notes"]] == [note["id"]]

    for who in (colleague, supervisor):
        error = problem(
            await client.patch(f"/api/notes/{note['id']}", json={"body": "hijacked"}, headers=who["headers"]), 403
        )
        assert "author" in error["detail"]
        problem(await client.delete(f"/api/notes/{note['id']}", headers=who["headers"]), 403)
    assert (await list_notes(client, tenant.headers, conversation))["notes"][0]["body"] == "I will call them back"

    edited = await client.patch(f"/api/notes/{note['id']}", json={"body": "Called back."}, headers=author["headers"])
    assert edited.status_code == 200, edited.text
    assert edited.json()["author_id"] == author["id"]

    by_admin = await client.patch(f"/api/notes/{note['id']}", json={"body": "Moderated."}, headers=tenant.headers)
    assert by_admin.status_code == 200, by_admin.text
    assert by_admin.json()["author_id"] == author["id"]  # editing does not change who wrote it
    assert by_admin.json()["body"] == "Moderated."

    admins_note = await create_note(client, tenant.headers, conversation, "admin's own")
    problem(await client.delete(f"/api/notes/{admins_note['id']}", headers=author["headers"]), 403)
    deleted = await client.delete(f"/api/notes/{note['id']}", headers=tenant.headers)
    assert deleted.status_code == 200, deleted.text
    assert [n["id"] for n in (await list_notes(client, tenant.headers, conversation))["notes"]] == [admins_note["id"]]


async def test_an_author_deletes_their_own_note(client: AsyncTestClient, tenant: Tenant, db: Database) -> None:
    author = await create_agent(client, tenant)
    conversation = (await ingest(db, tenant, "hello", external_id="6284006")).conversation_id
    note = await create_note(client, author["headers"], conversation, "typo")
    response = await client.delete(f"/api/notes/{note['id']}", headers=author["headers"])
    assert response.status_code == 200, response.text
    assert (await list_notes(client, tenant.headers, conversation))["total"] == 0


async def test_notes_on_a_conversation_the_agent_cannot_see_do_not_exist_for_them(
    client: AsyncTestClient, tenant: Tenant, db: Database
) -> None:
    agent = await create_agent(client, tenant)
    hidden = (await ingest(db, tenant, "hello", external_id="6284007")).conversation_id
    admins_note = await create_note(client, tenant.headers, hidden, "the admin's remark")
    agents_note = await create_note(client, agent["headers"], hidden, "written while it was unassigned")
    await assign(client, tenant, hidden, tenant.admin_id)

    problem(await client.get(notes_url(hidden), headers=agent["headers"]), 404)
    problem(await client.post(notes_url(hidden), json={"body": "let me in"}, headers=agent["headers"]), 404)
    for note in (admins_note, agents_note):
        problem(await client.patch(f"/api/notes/{note['id']}", json={"body": "x"}, headers=agent["headers"]), 404)
        problem(await client.delete(f"/api/notes/{note['id']}", headers=agent["headers"]), 404)
    assert (await list_notes(client, tenant.headers, hidden))["total"] == 2

    # Assigned to them, it is theirs to see again.
    await assign(client, tenant, hidden, agent["id"])
    assert (await list_notes(client, agent["headers"], hidden))["total"] == 2
    response = await client.patch(f"/api/notes/{agents_note['id']}", json={"body": "mine"}, headers=agent["headers"])
    assert response.status_code == 200, response.text


async def test_another_tenant_gets_404_everywhere(
    client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant, db: Database
) -> None:
    conversation = (await ingest(db, tenant, "hello", external_id="6284008")).conversation_id
    note = await create_note(client, tenant.headers, conversation, "ours")
    problem(await client.get(notes_url(conversation), headers=other_tenant.headers), 404)
    problem(await client.post(notes_url(conversation), json={"body": "theirs"}, headers=other_tenant.headers), 404)
    problem(await client.patch(f"/api/notes/{note['id']}", json={"body": "theirs"}, headers=other_tenant.headers), 404)
    problem(await client.delete(f"/api/notes/{note['id']}", headers=other_tenant.headers), 404)
    assert (await list_notes(client, tenant.headers, conversation))["notes"] == [note]
    problem(await client.get(notes_url(UUID(int=7)), headers=tenant.headers), 404)
    problem(await client.post(notes_url(UUID(int=7)), json={"body": "nowhere"}, headers=tenant.headers), 404)


BAD = [
    ("missing body", {}, "body"),
    ("empty", {"body": ""}, "body"),
    ("blank", {"body": " \n\t "}, "body"),
    ("too long", {"body": "x" * 10_001}, "body"),
    ("NUL byte", {"body": "a\x00b"}, "body"),
    ("not text", {"body": 42}, "body"),
    ("unknown field", {"body": "ok", "pinned": True}, "pinned"),
]


@pytest.mark.parametrize(("payload", "field"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
async def test_bad_input_is_refused_naming_the_field(
    client: AsyncTestClient, tenant: Tenant, db: Database, payload: dict[str, Any], field: str
) -> None:
    conversation = (await ingest(db, tenant, "hello", external_id="6284009")).conversation_id
    note = await create_note(client, tenant.headers, conversation, "original")
    error = problem(await client.post(notes_url(conversation), json=payload, headers=tenant.headers), 400)
    assert [e["field"] for e in error["errors"]] == [field]
    error = problem(await client.patch(f"/api/notes/{note['id']}", json=payload, headers=tenant.headers), 400)
    assert [e["field"] for e in error["errors"]] == [field]
    assert (await list_notes(client, tenant.headers, conversation))["notes"] == [note]


async def test_the_longest_note_is_accepted(client: AsyncTestClient, tenant: Tenant, db: Database) -> None:
    conversation = (await ingest(db, tenant, "hello", external_id="6284010")).conversation_id
    note = await create_note(client, tenant.headers, conversation, "y" * 10_000)
    assert len(note["body"]) == 10_000


async def test_changes_to_notes_are_logged(client: AsyncTestClient, tenant: Tenant, db: Database) -> None:
    agent = await create_agent(client, tenant)
    conversation = (await ingest(db, tenant, "hello", external_id="6284011")).conversation_id
    note = await create_note(client, agent["headers"], conversation, "first")
    await client.patch(f"/api/notes/{note['id']}", json={"body": "second"}, headers=agent["headers"])
    await client.delete(f"/api/notes/{note['id']}", headers=tenant.headers)

    created = await logged(client, tenant, "note.created")
    assert [(e["actor_id"], e["object_type"], e["object_id"]) for e in created] == [(agent["id"], "note", note["id"])]
    assert created[0]["details"] == {"conversation_id": str(conversation)}
    updated = await logged(client, tenant, "note.updated")
    assert [(e["actor_id"], e["object_id"]) for e in updated] == [(agent["id"], note["id"])]
    deleted = await logged(client, tenant, "note.deleted")
    assert [(e["actor_id"], e["object_id"]) for e in deleted] == [(tenant.admin_id, note["id"])]
    assert deleted[0]["details"] == {"conversation_id": str(conversation)}

    # A refused change leaves no trace.
    other = await create_agent(client, tenant)
    kept = await create_note(client, agent["headers"], conversation, "kept")
    problem(await client.patch(f"/api/notes/{kept['id']}", json={"body": "no"}, headers=other["headers"]), 403)
    assert len(await logged(client, tenant, "note.updated")) == 1
