"""Divisions and their members, as a client of the HTTP API sees them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest
from litestar.testing import AsyncTestClient

from omnistream.config import Settings
from omnistream.db import Database
from omnistream.divisions import service as divisions
from tests.conftest import PASSWORD, PROBLEM_JSON, Tenant, create_agent, problem

NOWHERE = "00000000-0000-4000-8000-000000000000"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def error_fields(body: dict[str, Any]) -> set[str]:
    return {error["field"] for error in body.get("errors") or []}


async def new_division(client: AsyncTestClient, tenant: Tenant, name: str | None = None, **extra: Any) -> dict:
    body = {"name": name or f"Division {uuid4().hex[:8]}"} | extra
    response = await client.post("/api/divisions", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def new_agent(client: AsyncTestClient, tenant: Tenant, name: str = "Sam Agent") -> dict:
    """An agent with the default role (not signed in: only a member to put in divisions)."""
    body = {"email": f"a-{uuid4().hex[:10]}@example.com", "name": name, "password": PASSWORD}
    response = await client.post("/api/agents", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def all_divisions(client: AsyncTestClient, tenant: Tenant) -> list[dict]:
    response = await client.get("/api/divisions", params={"per_page": 100}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()["divisions"]


async def get_division(client: AsyncTestClient, tenant: Tenant, division_id: str) -> dict:
    response = await client.get(f"/api/divisions/{division_id}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def add(client: AsyncTestClient, tenant: Tenant, division_id: str, agent_ids: list[str]) -> httpx.Response:
    return await client.post(
        f"/api/divisions/{division_id}/agents", json={"agent_ids": agent_ids}, headers=tenant.headers
    )


async def remove(client: AsyncTestClient, tenant: Tenant, division_id: str, agent_ids: list[str]) -> httpx.Response:
    return await client.request(
        "DELETE", f"/api/divisions/{division_id}/agents", json={"agent_ids": agent_ids}, headers=tenant.headers
    )


async def activity(client: AsyncTestClient, tenant: Tenant, object_id: str) -> list[dict]:
    response = await client.get(
        "/api/activity-logs", params={"object_type": "division", "object_id": object_id}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    return response.json()["activity_logs"]


# ---------------------------------------------------------------- create, read, update, delete


async def test_create_returns_201_with_the_division(client: AsyncTestClient, tenant: Tenant) -> None:
    response = await client.post(
        "/api/divisions", json={"name": "  Sales  ", "description": "Pre-sales chats"}, headers=tenant.headers
    )
    assert response.status_code == 201, response.text
    division = response.json()
    assert division["name"] == "Sales"
    assert division["description"] == "Pre-sales chats"
    assert division["agent_count"] == 0
    assert division["agents"] == []
    UUID(division["id"])
    assert at(division["updated_at"]) >= at(division["created_at"])

    listed = await all_divisions(client, tenant)
    assert [(d["id"], d["name"], d["agent_count"]) for d in listed] == [(division["id"], "Sales", 0)]


async def test_create_with_agents_puts_them_in(client: AsyncTestClient, tenant: Tenant) -> None:
    one, two = await new_agent(client, tenant, "Bea"), await new_agent(client, tenant, "Al")
    division = await new_division(client, tenant, agent_ids=[one["id"], two["id"], one["id"]])
    assert division["agent_count"] == 2
    assert [a["name"] for a in division["agents"]] == ["Al", "Bea"]
    assert (await all_divisions(client, tenant))[0]["agent_count"] == 2


async def test_description_defaults_to_empty(client: AsyncTestClient, tenant: Tenant) -> None:
    division = await new_division(client, tenant, "Support")
    assert division["description"] == ""


@pytest.mark.parametrize("taken", ["Support", "support", "SUPPORT", " Support "])
async def test_duplicate_name_ignoring_case_is_409(client: AsyncTestClient, tenant: Tenant, taken: str) -> None:
    await new_division(client, tenant, "Support")
    response = await client.post("/api/divisions", json={"name": taken}, headers=tenant.headers)
    body = problem(response, 409)
    assert "name" in error_fields(body)
    assert len(await all_divisions(client, tenant)) == 1


async def test_same_name_in_another_organisation_is_fine(
    client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    await new_division(client, tenant, "Support")
    await new_division(client, other_tenant, "Support")
    assert [d["name"] for d in await all_divisions(client, other_tenant)] == ["Support"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": 42}, "name"),
        ({"name": None}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "Sales\x00"}, "name"),
        ({"name": "Sales", "description": 7}, "description"),
        ({"name": "Sales", "description": "d" * 5001}, "description"),
        ({"name": "Sales", "colour": "red"}, "colour"),
        ({"name": "Sales", "agent_ids": "all"}, "agent_ids"),
        ({"name": "Sales", "agent_ids": ["not-a-uuid"]}, "agent_ids"),
        ({"name": "Sales", "agent_ids": [str(uuid4()) for _ in range(501)]}, "agent_ids"),
    ],
)
async def test_create_with_bad_input_is_400_and_stores_nothing(
    client: AsyncTestClient, tenant: Tenant, body: dict[str, Any], field: str
) -> None:
    response = await client.post("/api/divisions", json=body, headers=tenant.headers)
    result = problem(response, 400)
    assert field in {f.split("[")[0] for f in error_fields(result)}, result
    assert await all_divisions(client, tenant) == []


@pytest.mark.parametrize("content", [b"", b"[]", b"not json", b'"Sales"'])
async def test_create_with_a_body_that_is_not_an_object_is_400(
    client: AsyncTestClient, tenant: Tenant, content: bytes
) -> None:
    response = await client.post(
        "/api/divisions", content=content, headers=tenant.headers | {"Content-Type": "application/json"}
    )
    problem(response, 400)
    assert await all_divisions(client, tenant) == []


async def test_create_with_foreign_or_unknown_agents_is_422_naming_them_and_stores_nothing(
    client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    mine = await new_agent(client, tenant)
    foreign = await new_agent(client, other_tenant)
    response = await client.post(
        "/api/divisions",
        json={"name": "Sales", "agent_ids": [mine["id"], foreign["id"], NOWHERE]},
        headers=tenant.headers,
    )
    body = problem(response, 422)
    assert error_fields(body) == {"agent_ids"}
    assert set(body["invalid_agent_ids"]) == {foreign["id"], NOWHERE}
    assert foreign["id"] in body["detail"]
    assert NOWHERE in body["detail"]
    assert mine["id"] not in body["detail"]
    assert await all_divisions(client, tenant) == []


async def test_get_shows_the_division_with_its_agents(client: AsyncTestClient, tenant: Tenant) -> None:
    agent = await new_agent(client, tenant, "Zoe Agent")
    division = await new_division(client, tenant, "Billing", description="Invoices")
    assert (await add(client, tenant, division["id"], [agent["id"], tenant.admin_id])).status_code == 200

    shown = await get_division(client, tenant, division["id"])
    assert shown["id"] == division["id"]
    assert shown["name"] == "Billing"
    assert shown["description"] == "Invoices"
    assert shown["agent_count"] == 2
    by_id = {a["id"]: a for a in shown["agents"]}
    assert by_id[agent["id"]]["name"] == "Zoe Agent"
    assert by_id[agent["id"]]["email"] == agent["email"]
    assert by_id[agent["id"]]["role"] == "Agent"
    assert by_id[agent["id"]]["online_status"] == "offline"
    assert by_id[agent["id"]]["status"] == "active"
    assert by_id[tenant.admin_id]["role"] == "Admin"
    assert by_id[tenant.admin_id]["email"] == tenant.admin_email
    assert [a["name"] for a in shown["agents"]] == ["Ada Admin", "Zoe Agent"]


async def test_unknown_division_is_404(client: AsyncTestClient, tenant: Tenant) -> None:
    body = problem(await client.get(f"/api/divisions/{NOWHERE}", headers=tenant.headers), 404)
    assert "division" in body["detail"]


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "123", "00000000-0000-0000-0000-00000000000g"])
async def test_malformed_id_is_4xx_problem(client: AsyncTestClient, tenant: Tenant, bad_id: str) -> None:
    for method, path in [
        ("GET", f"/api/divisions/{bad_id}"),
        ("PATCH", f"/api/divisions/{bad_id}"),
        ("DELETE", f"/api/divisions/{bad_id}"),
        ("GET", f"/api/divisions/{bad_id}/agents"),
        ("POST", f"/api/divisions/{bad_id}/agents"),
    ]:
        response = await client.request(method, path, json={"agent_ids": [tenant.admin_id]}, headers=tenant.headers)
        assert 400 <= response.status_code < 500, (method, path, response.text)
        assert response.headers["content-type"].startswith(PROBLEM_JSON)


async def test_update_changes_only_the_given_fields(client: AsyncTestClient, tenant: Tenant) -> None:
    agent = await new_agent(client, tenant)
    division = await new_division(client, tenant, "Sales", description="Old", agent_ids=[agent["id"]])

    response = await client.patch(
        f"/api/divisions/{division['id']}", json={"description": "New"}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    assert (updated["name"], updated["description"]) == ("Sales", "New")
    assert [a["id"] for a in updated["agents"]] == [agent["id"]]
    assert at(updated["updated_at"]) > at(division["updated_at"])

    response = await client.patch(
        f"/api/divisions/{division['id']}", json={"name": " Inside Sales "}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    shown = await get_division(client, tenant, division["id"])
    assert (shown["name"], shown["description"]) == ("Inside Sales", "New")


async def test_update_can_change_the_case_of_its_own_name(client: AsyncTestClient, tenant: Tenant) -> None:
    division = await new_division(client, tenant, "sales")
    response = await client.patch(f"/api/divisions/{division['id']}", json={"name": "Sales"}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "Sales"


async def test_update_to_another_divisions_name_is_409(client: AsyncTestClient, tenant: Tenant) -> None:
    await new_division(client, tenant, "Support")
    division = await new_division(client, tenant, "Sales")
    response = await client.patch(f"/api/divisions/{division['id']}", json={"name": "SUPPORT"}, headers=tenant.headers)
    assert "name" in error_fields(problem(response, 409))
    assert (await get_division(client, tenant, division["id"]))["name"] == "Sales"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": None}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": ["Sales"]}, "name"),
        ({"description": None}, "description"),
        ({"agent_ids": []}, "agent_ids"),
        ({"name": "Ok", "owner": "me"}, "owner"),
    ],
)
async def test_update_with_bad_input_is_400_and_changes_nothing(
    client: AsyncTestClient, tenant: Tenant, body: dict[str, Any], field: str
) -> None:
    division = await new_division(client, tenant, "Sales", description="Kept")
    response = await client.patch(f"/api/divisions/{division['id']}", json=body, headers=tenant.headers)
    assert field in error_fields(problem(response, 400))
    shown = await get_division(client, tenant, division["id"])
    assert (shown["name"], shown["description"], shown["updated_at"]) == ("Sales", "Kept", division["updated_at"])


async def test_update_of_unknown_division_is_404(client: AsyncTestClient, tenant: Tenant) -> None:
    problem(await client.patch(f"/api/divisions/{NOWHERE}", json={"name": "X"}, headers=tenant.headers), 404)


async def test_delete_removes_the_division(client: AsyncTestClient, tenant: Tenant) -> None:
    agent = await new_agent(client, tenant)
    division = await new_division(client, tenant, "Sales", agent_ids=[agent["id"]])
    kept = await new_division(client, tenant, "Support")

    response = await client.delete(f"/api/divisions/{division['id']}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"message": "division deleted", "id": division["id"]}

    problem(await client.get(f"/api/divisions/{division['id']}", headers=tenant.headers), 404)
    assert [d["id"] for d in await all_divisions(client, tenant)] == [kept["id"]]
    # The agent itself is untouched.
    assert (await client.get(f"/api/agents/{agent['id']}", headers=tenant.headers)).status_code == 200
    # A deleted name can be used again.
    await new_division(client, tenant, "sales")
    problem(await client.delete(f"/api/divisions/{division['id']}", headers=tenant.headers), 404)


async def test_delete_keeps_conversations_but_clears_their_division(
    client: AsyncTestClient, tenant: Tenant, database: str
) -> None:
    division = await new_division(client, tenant, "Sales")
    conn = await asyncpg.connect(database)
    try:
        contact_id = await conn.fetchval(
            "INSERT INTO contacts (tenant_id, name) VALUES ($1, 'Customer') RETURNING id", UUID(tenant.id)
        )
        conversation_id = await conn.fetchval(
            "INSERT INTO conversations (tenant_id, contact_id, channel, division_id)"
            " VALUES ($1, $2, 'whatsapp', $3) RETURNING id",
            UUID(tenant.id),
            contact_id,
            UUID(division["id"]),
        )
        response = await client.delete(f"/api/divisions/{division['id']}", headers=tenant.headers)
        assert response.status_code == 200, response.text
        row = await conn.fetchrow("SELECT division_id FROM conversations WHERE id = $1", conversation_id)
    finally:
        await conn.close()
    assert row is not None
    assert row["division_id"] is None


# ---------------------------------------------------------------- members


async def test_add_agents_is_idempotent(client: AsyncTestClient, tenant: Tenant) -> None:
    one, two = await new_agent(client, tenant, "One"), await new_agent(client, tenant, "Two")
    division = await new_division(client, tenant, "Sales")

    response = await add(client, tenant, division["id"], [one["id"]])
    assert response.status_code == 200, response.text
    assert [a["id"] for a in response.json()["agents"]] == [one["id"]]

    response = await add(client, tenant, division["id"], [one["id"], two["id"], two["id"]])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["agent_count"] == 2
    assert sorted(a["id"] for a in body["agents"]) == sorted([one["id"], two["id"]])

    response = await add(client, tenant, division["id"], [one["id"], two["id"]])
    assert response.status_code == 200, response.text
    assert response.json()["agent_count"] == 2


async def test_an_agent_can_be_in_several_divisions(client: AsyncTestClient, tenant: Tenant) -> None:
    agent = await new_agent(client, tenant)
    first, second = await new_division(client, tenant, "A"), await new_division(client, tenant, "B")
    assert (await add(client, tenant, first["id"], [agent["id"]])).status_code == 200
    assert (await add(client, tenant, second["id"], [agent["id"]])).status_code == 200
    assert {d["name"]: d["agent_count"] for d in await all_divisions(client, tenant)} == {"A": 1, "B": 1}


async def test_adding_foreign_or_unknown_agents_is_422_and_adds_nobody(
    client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    mine = await new_agent(client, tenant)
    foreign = await new_agent(client, other_tenant)
    division = await new_division(client, tenant, "Sales")

    body = problem(await add(client, tenant, division["id"], [mine["id"], foreign["id"]]), 422)
    assert body["invalid_agent_ids"] == [foreign["id"]]
    assert foreign["id"] in body["detail"]
    body = problem(await add(client, tenant, division["id"], [NOWHERE, mine["id"]]), 422)
    assert body["invalid_agent_ids"] == [NOWHERE]

    shown = await get_division(client, tenant, division["id"])
    assert shown["agents"] == []
    assert shown["agent_count"] == 0
    # The other organisation's agent is not in any division of its own either.
    assert (await all_divisions(client, other_tenant)) == []


async def test_suspended_or_deleted_agents_cannot_be_added(client: AsyncTestClient, tenant: Tenant) -> None:
    suspended, deleted = await new_agent(client, tenant), await new_agent(client, tenant)
    response = await client.patch(
        f"/api/agents/{suspended['id']}", json={"status": "suspended"}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    assert (await client.delete(f"/api/agents/{deleted['id']}", headers=tenant.headers)).status_code == 200
    division = await new_division(client, tenant, "Sales")

    body = problem(await add(client, tenant, division["id"], [suspended["id"], deleted["id"]]), 422)
    assert set(body["invalid_agent_ids"]) == {suspended["id"], deleted["id"]}
    assert (await get_division(client, tenant, division["id"]))["agents"] == []


async def test_a_deleted_agent_leaves_its_divisions(client: AsyncTestClient, tenant: Tenant) -> None:
    stays, goes = await new_agent(client, tenant, "Stays"), await new_agent(client, tenant, "Goes")
    division = await new_division(client, tenant, "Sales", agent_ids=[stays["id"], goes["id"]])
    assert (await client.delete(f"/api/agents/{goes['id']}", headers=tenant.headers)).status_code == 200

    shown = await get_division(client, tenant, division["id"])
    assert [a["name"] for a in shown["agents"]] == ["Stays"]
    assert shown["agent_count"] == 1
    listed = (await client.get(f"/api/divisions/{division['id']}/agents", headers=tenant.headers)).json()
    assert [a["id"] for a in listed["agents"]] == [stays["id"]]
    assert listed["total"] == 1


async def test_a_suspended_member_stays_listed_as_suspended(client: AsyncTestClient, tenant: Tenant) -> None:
    agent = await new_agent(client, tenant)
    division = await new_division(client, tenant, "Sales", agent_ids=[agent["id"]])
    response = await client.patch(f"/api/agents/{agent['id']}", json={"status": "suspended"}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    shown = await get_division(client, tenant, division["id"])
    assert [(a["id"], a["status"]) for a in shown["agents"]] == [(agent["id"], "suspended")]
    # ...and can still be taken out.
    response = await remove(client, tenant, division["id"], [agent["id"]])
    assert response.status_code == 200, response.text
    assert response.json()["agents"] == []


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"agent_ids": []},
        {"agent_ids": None},
        {"agent_ids": "abc"},
        {"agent_ids": [1, 2]},
        {"agent_ids": ["not-a-uuid"]},
        {"agent_ids": [str(uuid4()) for _ in range(501)]},
        {"agent_ids": [NOWHERE], "role": "admin"},
        {"agent_id": NOWHERE},
    ],
)
async def test_member_changes_with_bad_input_are_400(
    client: AsyncTestClient, tenant: Tenant, body: dict[str, Any]
) -> None:
    division = await new_division(client, tenant, "Sales", agent_ids=[tenant.admin_id])
    for method in ("POST", "DELETE"):
        response = await client.request(
            method, f"/api/divisions/{division['id']}/agents", json=body, headers=tenant.headers
        )
        result = problem(response, 400)
        assert any(f.split("[")[0] in {"agent_ids", "role", "agent_id"} for f in error_fields(result)), result
    shown = await get_division(client, tenant, division["id"])
    assert [a["id"] for a in shown["agents"]] == [tenant.admin_id]


async def test_500_agents_can_be_added_at_once(client: AsyncTestClient, tenant: Tenant) -> None:
    # 500 ids is the limit, not an error; the check names every id that is not an agent here.
    division = await new_division(client, tenant, "Sales")
    ids = [tenant.admin_id] + [str(uuid4()) for _ in range(499)]
    body = problem(await add(client, tenant, division["id"], ids), 422)
    assert len(body["invalid_agent_ids"]) == 499
    assert tenant.admin_id not in body["invalid_agent_ids"]


async def test_remove_agents(client: AsyncTestClient, tenant: Tenant) -> None:
    one, two = await new_agent(client, tenant, "One"), await new_agent(client, tenant, "Two")
    division = await new_division(client, tenant, "Sales", agent_ids=[one["id"], two["id"]])

    response = await remove(client, tenant, division["id"], [one["id"]])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == division["id"]
    assert [a["id"] for a in body["agents"]] == [two["id"]]
    assert body["agent_count"] == 1

    # Removing someone who is not (or no longer) a member changes nothing and is not an error.
    response = await remove(client, tenant, division["id"], [one["id"], NOWHERE])
    assert response.status_code == 200, response.text
    assert [a["id"] for a in response.json()["agents"]] == [two["id"]]
    # The removed agent still exists.
    assert (await client.get(f"/api/agents/{one['id']}", headers=tenant.headers)).status_code == 200


async def test_list_division_agents(client: AsyncTestClient, tenant: Tenant) -> None:
    alice = await new_agent(client, tenant, "Alice Smith")
    bob = await new_agent(client, tenant, "Bob Jones")
    await new_agent(client, tenant, "Not A Member")
    division = await new_division(client, tenant, "Sales", agent_ids=[alice["id"], bob["id"]])

    response = await client.get(f"/api/divisions/{division['id']}/agents", headers=tenant.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"agents", "next_cursor", "total"}
    assert body["total"] == 2
    assert body["next_cursor"] is None
    assert {a["id"] for a in body["agents"]} == {alice["id"], bob["id"]}
    assert set(body["agents"][0]) >= {"id", "name", "email", "role", "online_status"}

    response = await client.get(
        f"/api/divisions/{division['id']}/agents", params={"q": "smith"}, headers=tenant.headers
    )
    assert [a["id"] for a in response.json()["agents"]] == [alice["id"]]
    assert response.json()["total"] == 1


async def test_list_agents_of_an_empty_division(client: AsyncTestClient, tenant: Tenant) -> None:
    division = await new_division(client, tenant, "Sales")
    response = await client.get(f"/api/divisions/{division['id']}/agents", headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"agents": [], "next_cursor": None, "total": 0}
    problem(await client.get(f"/api/divisions/{NOWHERE}/agents", headers=tenant.headers), 404)


async def test_division_agents_cursor_walks_every_member_once(client: AsyncTestClient, tenant: Tenant) -> None:
    members = [await new_agent(client, tenant, f"Agent {i}") for i in range(7)]
    division = await new_division(client, tenant, "Sales")
    # Two batches: members added in one request share a join time; the cursor must still move on.
    assert (await add(client, tenant, division["id"], [m["id"] for m in members[:4]])).status_code == 200
    assert (await add(client, tenant, division["id"], [m["id"] for m in members[4:]])).status_code == 200

    for sort_order in ("desc", "asc"):
        seen: list[str] = []
        params: dict[str, Any] = {"per_page": 3, "sort_order": sort_order}
        for _ in range(10):
            response = await client.get(
                f"/api/divisions/{division['id']}/agents", params=params, headers=tenant.headers
            )
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["total"] == 7
            seen += [a["id"] for a in body["agents"]]
            if body["next_cursor"] is None:
                break
            params["cursor"] = body["next_cursor"]
        assert len(seen) == len(set(seen)) == 7
        assert set(seen) == {m["id"] for m in members}


# ---------------------------------------------------------------- listing divisions


async def test_list_pages_and_cursor_walk_everything_once(client: AsyncTestClient, tenant: Tenant) -> None:
    created = [(await new_division(client, tenant, f"Division {i:02d}"))["id"] for i in range(12)]

    response = await client.get("/api/divisions", params={"per_page": 5}, headers=tenant.headers)
    body = response.json()
    assert body["total"] == 12
    assert [d["id"] for d in body["divisions"]] == created[::-1][:5]  # newest first by default

    response = await client.get("/api/divisions", params={"per_page": 5, "page": 3}, headers=tenant.headers)
    assert [d["id"] for d in response.json()["divisions"]] == created[::-1][10:]

    for sort_order, expected in (("desc", created[::-1]), ("asc", created)):
        seen: list[str] = []
        params: dict[str, Any] = {"per_page": 5, "sort_order": sort_order}
        while True:
            response = await client.get("/api/divisions", params=params, headers=tenant.headers)
            assert response.status_code == 200, response.text
            page = response.json()
            seen += [d["id"] for d in page["divisions"]]
            if page["next_cursor"] is None:
                break
            params["cursor"] = page["next_cursor"]
            assert len(seen) <= 12
        assert seen == expected


async def test_list_filters_by_name(client: AsyncTestClient, tenant: Tenant) -> None:
    await new_division(client, tenant, "Sales EU")
    await new_division(client, tenant, "Sales US")
    await new_division(client, tenant, "Support", description="Help desk")
    await new_division(client, tenant, "100% Done")

    async def names(q: str) -> tuple[list[str], int]:
        response = await client.get("/api/divisions", params={"q": q}, headers=tenant.headers)
        assert response.status_code == 200, response.text
        return sorted(d["name"] for d in response.json()["divisions"]), response.json()["total"]

    assert await names("sales") == (["Sales EU", "Sales US"], 2)
    assert await names("desk") == (["Support"], 1)
    assert await names("%") == (["100% Done"], 1)  # a literal percent sign, not a wildcard
    assert await names("nothing") == ([], 0)


@pytest.mark.parametrize(
    "params",
    [{"per_page": 0}, {"per_page": 101}, {"page": 0}, {"page": "x"}, {"sort_order": "up"}, {"cursor": "garbage"}],
)
async def test_list_with_bad_paging_is_400(client: AsyncTestClient, tenant: Tenant, params: dict) -> None:
    problem(await client.get("/api/divisions", params=params, headers=tenant.headers), 400)


async def test_list_is_only_this_organisations(client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant) -> None:
    mine = await new_division(client, tenant, "Mine")
    await new_division(client, other_tenant, "Theirs")
    response = await client.get("/api/divisions", headers=tenant.headers)
    assert [d["id"] for d in response.json()["divisions"]] == [mine["id"]]
    assert response.json()["total"] == 1


# ---------------------------------------------------------------- access


async def test_agents_can_read_but_not_change(client: AsyncTestClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant)
    division = await new_division(client, tenant, "Sales", agent_ids=[agent["id"]])
    path = f"/api/divisions/{division['id']}"

    for read in ("/api/divisions", path, f"{path}/agents"):
        response = await client.get(read, headers=agent["headers"])
        assert response.status_code == 200, (read, response.text)
    assert (await client.get(path, headers=agent["headers"])).json()["agents"][0]["id"] == agent["id"]

    attempts = [
        ("POST", "/api/divisions", {"name": "Mine now"}),
        ("PATCH", path, {"name": "Renamed"}),
        ("DELETE", path, None),
        ("POST", f"{path}/agents", {"agent_ids": [tenant.admin_id]}),
        ("DELETE", f"{path}/agents", {"agent_ids": [agent["id"]]}),
    ]
    for method, url, body in attempts:
        response = await client.request(method, url, json=body, headers=agent["headers"])
        problem(response, 403)

    shown = await get_division(client, tenant, division["id"])
    assert shown["name"] == "Sales"
    assert [a["id"] for a in shown["agents"]] == [agent["id"]]
    assert len(await all_divisions(client, tenant)) == 1


async def test_supervisors_cannot_change_divisions(client: AsyncTestClient, tenant: Tenant) -> None:
    supervisor = await create_agent(client, tenant, role="supervisor")
    problem(await client.post("/api/divisions", json={"name": "X"}, headers=supervisor["headers"]), 403)
    assert (await client.get("/api/divisions", headers=supervisor["headers"])).status_code == 200


async def test_without_credentials_is_401(client: AsyncTestClient, tenant: Tenant) -> None:
    division = await new_division(client, tenant, "Sales")
    problem(await client.get("/api/divisions"), 401)
    problem(await client.get(f"/api/divisions/{division['id']}"), 401)
    problem(await client.delete(f"/api/divisions/{division['id']}"), 401)
    assert len(await all_divisions(client, tenant)) == 1


async def test_another_organisations_division_is_404_everywhere(
    client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs_agent = await new_agent(client, other_tenant)
    theirs = await new_division(client, other_tenant, "Theirs", agent_ids=[theirs_agent["id"]])
    path = f"/api/divisions/{theirs['id']}"
    attempts = [
        ("GET", path, None),
        ("PATCH", path, {"name": "Hijacked"}),
        ("DELETE", path, None),
        ("GET", f"{path}/agents", None),
        ("POST", f"{path}/agents", {"agent_ids": [tenant.admin_id]}),
        ("DELETE", f"{path}/agents", {"agent_ids": [theirs_agent["id"]]}),
    ]
    for method, url, body in attempts:
        response = await client.request(method, url, json=body, headers=tenant.headers)
        problem(response, 404)
    # Creating a division with their name is fine here, and does not reveal theirs.
    await new_division(client, tenant, "Theirs")

    shown = await get_division(client, other_tenant, theirs["id"])
    assert shown["name"] == "Theirs"
    assert [a["id"] for a in shown["agents"]] == [theirs_agent["id"]]
    assert await activity(client, other_tenant, theirs["id"]) != []
    assert all(e["action"] == "division.created" for e in await activity(client, other_tenant, theirs["id"]))


# ---------------------------------------------------------------- audit trail


async def test_every_change_is_in_the_activity_log(client: AsyncTestClient, tenant: Tenant) -> None:
    agent = await new_agent(client, tenant)
    division = await new_division(client, tenant, "Sales", description="Pre-sales")
    division_id = division["id"]
    await client.patch(f"/api/divisions/{division_id}", json={"name": "Inside Sales"}, headers=tenant.headers)
    await add(client, tenant, division_id, [agent["id"]])
    await add(client, tenant, division_id, [agent["id"]])  # no change: no entry
    await remove(client, tenant, division_id, [agent["id"]])
    await remove(client, tenant, division_id, [agent["id"]])  # no change: no entry
    await client.delete(f"/api/divisions/{division_id}", headers=tenant.headers)

    entries = await activity(client, tenant, division_id)
    assert [e["action"] for e in reversed(entries)] == [
        "division.created",
        "division.updated",
        "division.agents_added",
        "division.agents_removed",
        "division.deleted",
    ]
    by_action = {e["action"]: e for e in entries}
    assert all(e["actor_id"] == tenant.admin_id and e["object_id"] == division_id for e in entries)
    assert by_action["division.created"]["details"]["name"] == "Sales"
    assert by_action["division.updated"]["details"]["changes"] == {"name": "Inside Sales"}
    assert by_action["division.agents_added"]["details"]["agent_ids"] == [agent["id"]]
    assert by_action["division.agents_removed"]["details"]["agent_ids"] == [agent["id"]]
    assert by_action["division.deleted"]["details"]["name"] == "Inside Sales"


async def test_refused_changes_leave_no_activity(client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant) -> None:
    foreign = await new_agent(client, other_tenant)
    division = await new_division(client, tenant, "Sales")
    await new_division(client, tenant, "Support")
    problem(await add(client, tenant, division["id"], [foreign["id"]]), 422)
    problem(
        await client.patch(f"/api/divisions/{division['id']}", json={"name": "support"}, headers=tenant.headers), 409
    )
    assert [e["action"] for e in await activity(client, tenant, division["id"])] == ["division.created"]


# ---------------------------------------------------------------- what other areas rely on


@pytest.fixture
async def app_db(settings: Settings) -> AsyncIterator[Database]:
    """A pool of the app's own role on this test's event loop (the app's pool lives on the client's)."""
    db = await Database.connect(settings.database_url, min_size=1, max_size=1)
    yield db
    await db.close()


async def test_membership_lookups_for_other_areas(
    client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant, app_db: Database
) -> None:
    agent = await new_agent(client, tenant)
    first = await new_division(client, tenant, "A", agent_ids=[agent["id"]])
    second = await new_division(client, tenant, "B", agent_ids=[agent["id"]])
    empty = await new_division(client, tenant, "C")
    theirs = await new_division(client, other_tenant, "D")
    tenant_id, agent_id = UUID(tenant.id), UUID(agent["id"])

    async with app_db.tenant(tenant_id) as conn:
        assert set(await divisions.agent_division_ids(conn, tenant_id, agent_id)) == {
            UUID(first["id"]),
            UUID(second["id"]),
        }
        assert await divisions.exists(conn, tenant_id, UUID(empty["id"]))
        assert not await divisions.exists(conn, tenant_id, UUID(theirs["id"]))
        assert await divisions.is_member(conn, tenant_id, UUID(first["id"]), agent_id)
        assert not await divisions.is_member(conn, tenant_id, UUID(empty["id"]), agent_id)
        assert not await divisions.is_member(conn, tenant_id, UUID(first["id"]), UUID(tenant.admin_id))

    assert (await client.delete(f"/api/agents/{agent['id']}", headers=tenant.headers)).status_code == 200
    async with app_db.tenant(tenant_id) as conn:
        assert await divisions.agent_division_ids(conn, tenant_id, agent_id) == []
        assert not await divisions.is_member(conn, tenant_id, UUID(first["id"]), agent_id)
