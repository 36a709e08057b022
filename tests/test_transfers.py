"""Transfers: handing a conversation to an agent or a division, and the history of it."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import httpx
from litestar.testing import AsyncTestClient

from tests.conftest import Tenant, create_agent, headers_of, ingest, problem, refused

CONVERSATIONS = "/api/conversations"


async def open_conversation(db: Any, tenant: Tenant) -> str:
    return str((await ingest(db, tenant, "hello")).conversation_id)


async def transfer(
    client: AsyncTestClient, who: Tenant | dict[str, Any], conversation_id: str, body: Any
) -> httpx.Response:
    return await client.post(f"{CONVERSATIONS}/{conversation_id}/transfer", json=body, headers=headers_of(who))


async def history(
    client: AsyncTestClient, who: Tenant | dict[str, Any], conversation_id: str, **params: Any
) -> dict[str, Any]:
    response = await client.get(f"{CONVERSATIONS}/{conversation_id}/transfers", params=params, headers=headers_of(who))
    assert response.status_code == 200, response.text
    return response.json()


async def fetch(client: AsyncTestClient, who: Tenant | dict[str, Any], conversation_id: str) -> dict[str, Any]:
    response = await client.get(f"{CONVERSATIONS}/{conversation_id}", headers=headers_of(who))
    assert response.status_code == 200, response.text
    return response.json()


async def make_division(client: AsyncTestClient, tenant: Tenant, agent_ids: list[str] | None = None) -> str:
    response = await client.post(
        "/api/divisions",
        json={"name": f"Division {uuid4().hex[:8]}", "agent_ids": agent_ids or []},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def test_transfer_to_an_agent(client: AsyncTestClient, tenant: Tenant, db: Any) -> None:
    agent = await create_agent(client, tenant)
    conversation_id = await open_conversation(db, tenant)
    response = await transfer(client, tenant, conversation_id, {"to_agent_id": agent["id"], "reason": "speaks Dutch"})
    assert response.status_code == 201, response.text
    made = response.json()
    assert made["conversation_id"] == conversation_id
    assert (made["from_agent_id"], made["to_agent_id"]) == (None, agent["id"])
    assert (made["from_division_id"], made["to_division_id"]) == (None, None)
    assert made["reason"] == "speaks Dutch"
    assert made["transferred_by"] == tenant.admin_id

    conversation = await fetch(client, agent, conversation_id)
    assert conversation["assigned_agent_id"] == agent["id"]
    assert (await history(client, tenant, conversation_id))["transfers"] == [made]

    response = await client.get(
        "/api/activity-logs", params={"object_id": conversation_id, "action": "conversation"}, headers=tenant.headers
    )
    assert [e["action"] for e in response.json()["activity_logs"]] == ["conversation.assigned"]


async def test_transfer_to_a_division_waits_there_unassigned(client: AsyncTestClient, tenant: Tenant, db: Any) -> None:
    agent = await create_agent(client, tenant)
    member = await create_agent(client, tenant)
    division = await make_division(client, tenant, [member["id"]])
    conversation_id = await open_conversation(db, tenant)
    assert (await transfer(client, tenant, conversation_id, {"to_agent_id": agent["id"]})).status_code == 201

    response = await transfer(client, tenant, conversation_id, {"to_division_id": division, "reason": "billing"})
    assert response.status_code == 201, response.text
    made = response.json()
    assert (made["from_agent_id"], made["to_agent_id"]) == (agent["id"], None)
    assert (made["from_division_id"], made["to_division_id"]) == (None, division)

    conversation = await fetch(client, tenant, conversation_id)
    assert (conversation["assigned_agent_id"], conversation["division_id"]) == (None, division)
    # The division's members find it in their queue; the previous agent no longer sees it.
    response = await client.get(CONVERSATIONS, params={"assignee": "unassigned"}, headers=member["headers"])
    assert [c["id"] for c in response.json()["conversations"]] == [conversation_id]
    problem(await client.get(f"{CONVERSATIONS}/{conversation_id}", headers=agent["headers"]), 404)


async def test_transfer_to_an_agent_within_a_division(client: AsyncTestClient, tenant: Tenant, db: Any) -> None:
    member = await create_agent(client, tenant)
    outsider = await create_agent(client, tenant)
    division = await make_division(client, tenant, [member["id"]])
    conversation_id = await open_conversation(db, tenant)

    body = problem(
        await transfer(client, tenant, conversation_id, {"to_agent_id": outsider["id"], "to_division_id": division}),
        422,
    )
    assert body["errors"][0]["field"] == "to_agent_id"  # the request's own words
    body = problem(await transfer(client, tenant, conversation_id, {"to_division_id": str(uuid4())}), 422)
    assert body["errors"][0]["field"] == "to_division_id"
    unchanged = await fetch(client, tenant, conversation_id)
    assert (unchanged["assigned_agent_id"], unchanged["division_id"]) == (None, None)
    assert (await history(client, tenant, conversation_id))["total"] == 0

    response = await transfer(
        client, tenant, conversation_id, {"to_agent_id": member["id"], "to_division_id": division}
    )
    assert response.status_code == 201, response.text
    assert (response.json()["to_agent_id"], response.json()["to_division_id"]) == (member["id"], division)
    conversation = await fetch(client, tenant, conversation_id)
    assert (conversation["assigned_agent_id"], conversation["division_id"]) == (member["id"], division)


async def test_a_transfer_must_name_a_valid_target(
    client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant, db: Any
) -> None:
    suspended = await create_agent(client, tenant)
    response = await client.patch(
        f"/api/agents/{suspended['id']}", json={"status": "suspended"}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    foreign_division = await make_division(client, other_tenant)
    conversation_id = await open_conversation(db, tenant)

    for body in ({}, {"reason": "no target"}, {"to_agent_id": None, "to_division_id": None}):
        problem(await transfer(client, tenant, conversation_id, body), 422)
    for body in (
        {"to_agent_id": suspended["id"]},
        {"to_agent_id": other_tenant.admin_id},
        {"to_agent_id": str(uuid4())},
        {"to_division_id": foreign_division},
        {"to_division_id": str(uuid4())},
    ):
        problem(await transfer(client, tenant, conversation_id, body), 422)
    for body in (
        {"to_agent_id": "someone"},
        {"to_agent_id": tenant.admin_id, "why": "x"},
        {"to_agent_id": tenant.admin_id, "reason": 5},
        {"to_agent_id": tenant.admin_id, "reason": "x" * 1001},
        [tenant.admin_id],
    ):
        refused(await transfer(client, tenant, conversation_id, body))

    unchanged = await fetch(client, tenant, conversation_id)
    assert (unchanged["assigned_agent_id"], unchanged["division_id"]) == (None, None)
    assert (await history(client, tenant, conversation_id))["total"] == 0


async def test_history_is_newest_first_with_paging(client: AsyncTestClient, tenant: Tenant, db: Any) -> None:
    agents = [await create_agent(client, tenant) for _ in range(3)]
    conversation_id = await open_conversation(db, tenant)
    made = []
    for agent in agents:
        response = await transfer(client, tenant, conversation_id, {"to_agent_id": agent["id"]})
        assert response.status_code == 201, response.text
        made.append(response.json())
    # The history keeps each hop: who it came from and who it went to.
    assert [(t["from_agent_id"], t["to_agent_id"]) for t in made] == [
        (None, agents[0]["id"]),
        (agents[0]["id"], agents[1]["id"]),
        (agents[1]["id"], agents[2]["id"]),
    ]

    first = await history(client, tenant, conversation_id, per_page=2)
    assert (first["transfers"], first["total"]) == (made[::-1][:2], 3)
    second = await history(client, tenant, conversation_id, per_page=2, cursor=first["next_cursor"])
    assert (second["transfers"], second["next_cursor"]) == ([made[0]], None)
    assert (await history(client, tenant, conversation_id, sort_order="asc"))["transfers"] == made
    # Oldest first, the cursor walks forwards.
    first = await history(client, tenant, conversation_id, per_page=2, sort_order="asc")
    assert first["transfers"] == made[:2]
    second = await history(client, tenant, conversation_id, per_page=2, sort_order="asc", cursor=first["next_cursor"])
    assert (second["transfers"], second["next_cursor"]) == ([made[2]], None)
    assert (await history(client, tenant, conversation_id, per_page=2, page=2))["transfers"] == [made[0]]
    refused(
        await client.get(f"{CONVERSATIONS}/{conversation_id}/transfers", params={"cursor": "x"}, headers=tenant.headers)
    )
    # Another conversation has its own (empty) history.
    other = await open_conversation(db, tenant)
    assert await history(client, tenant, other) == {"transfers": [], "next_cursor": None, "total": 0}


async def test_an_agent_may_transfer_what_it_sees(client: AsyncTestClient, tenant: Tenant, db: Any) -> None:
    agent = await create_agent(client, tenant)
    colleague = await create_agent(client, tenant)
    conversation_id = await open_conversation(db, tenant)
    response = await transfer(client, agent, conversation_id, {"to_agent_id": colleague["id"], "reason": "shift ends"})
    assert response.status_code == 201, response.text
    assert response.json()["transferred_by"] == agent["id"]
    assert (await fetch(client, colleague, conversation_id))["assigned_agent_id"] == colleague["id"]
    # Handed over: the agent neither sees it nor can move it again.
    problem(await client.get(f"{CONVERSATIONS}/{conversation_id}/transfers", headers=agent["headers"]), 404)
    problem(await transfer(client, agent, conversation_id, {"to_agent_id": agent["id"]}), 404)
    assert (await history(client, colleague, conversation_id))["total"] == 1


async def test_another_tenants_conversation_cannot_be_transferred(
    client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant, db: Any
) -> None:
    foreign = await open_conversation(db, other_tenant)
    problem(await transfer(client, tenant, foreign, {"to_agent_id": tenant.admin_id}), 404)
    problem(await client.get(f"{CONVERSATIONS}/{foreign}/transfers", headers=tenant.headers), 404)
    problem(await transfer(client, tenant, str(uuid4()), {"to_agent_id": tenant.admin_id}), 404)
    assert (await fetch(client, other_tenant, foreign))["assigned_agent_id"] is None
    assert (await history(client, other_tenant, foreign))["total"] == 0
    response = await client.post(
        f"{CONVERSATIONS}/not-a-uuid/transfer", json={"to_agent_id": tenant.admin_id}, headers=tenant.headers
    )
    assert 400 <= response.status_code < 500
