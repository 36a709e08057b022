"""Quick replies, as agents and supervisors use them through the HTTP API."""

from __future__ import annotations

import csv
import io
from typing import Any
from uuid import uuid4

import asyncpg
import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import AsyncTestClient

from omnistream.quick_replies.service import MAX_IMPORT_BYTES, MAX_IMPORT_ROWS
from tests.conftest import Tenant, create_agent, headers_of, ingest, problem

BASE = "/api/quick-replies"
NOWHERE = "00000000-0000-4000-8000-000000000000"
HEADER = "shortcut,title,content,division_id,media_id\r\n"


async def new_reply(client: AsyncTestClient, who: Tenant | dict[str, Any], **fields: Any) -> dict[str, Any]:
    body = {"shortcut": f"s{uuid4().hex[:10]}", "title": "Greeting", "content": "Hello {{contact.name}}"} | fields
    response = await client.post(BASE, json=body, headers=headers_of(who))
    assert response.status_code == 201, response.text
    return response.json()


async def listing(client: AsyncTestClient, who: Tenant | dict[str, Any], **params: Any) -> dict[str, Any]:
    response = await client.get(BASE, params=params, headers=headers_of(who))
    assert response.status_code == 200, response.text
    return response.json()


def shortcuts(page: dict[str, Any]) -> list[str]:
    return [r["shortcut"] for r in page["quick_replies"]]


async def new_division(client: AsyncTestClient, tenant: Tenant, agent_ids: list[str] | None = None) -> str:
    body = {"name": f"Division {uuid4().hex[:8]}", "agent_ids": agent_ids or []}
    response = await client.post("/api/divisions", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def upload_media(client: AsyncTestClient, tenant: Tenant) -> str:
    files = {"file": ("note.txt", b"hello there", "text/plain")}
    response = await client.post("/api/media/upload", files=files, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def export(client: AsyncTestClient, tenant: Tenant) -> str:
    response = await client.get(f"{BASE}/export", headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    return response.content.decode("utf-8")


async def import_csv(
    client: AsyncTestClient, who: Tenant | dict[str, Any], data: bytes | str, **params: Any
) -> httpx.Response:
    content = data.encode() if isinstance(data, str) else data
    files = {"file": ("replies.csv", content, "text/csv")}
    return await client.post(f"{BASE}/import", files=files, params=params, headers=headers_of(who))


async def stored(database: str) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(database)
    try:
        rows = await conn.fetch(
            "SELECT id, shortcut, title, content, division_id, media_id, updated_at FROM quick_replies ORDER BY id"
        )
        return [dict(r) for r in rows]
    finally:
        await conn.close()


# ---------------------------------------------------------------- CRUD and rules


async def test_create_update_delete(client: AsyncTestClient, tenant: Tenant, database: str) -> None:
    division_id = await new_division(client, tenant)
    media_id = await upload_media(client, tenant)
    made = await new_reply(
        client, tenant, shortcut="Thanks", content="Thanks {{ contact.name }}!", division_id=division_id
    )
    assert made["shortcut"] == "Thanks"
    assert made["division_id"] == division_id
    assert made["usage_count"] == 0
    assert made["last_used_at"] is None
    assert made["is_favorite"] is False
    assert made["created_by"] == tenant.admin_id

    patched = await client.patch(
        f"{BASE}/{made['id']}", json={"title": "Thank you", "media_id": media_id}, headers=tenant.headers
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["title"] == "Thank you"
    assert patched.json()["media_id"] == media_id
    assert patched.json()["content"] == "Thanks {{ contact.name }}!"

    cleared = await client.patch(f"{BASE}/{made['id']}", json={"division_id": None}, headers=tenant.headers)
    assert cleared.json()["division_id"] is None

    deleted = await client.delete(f"{BASE}/{made['id']}", headers=tenant.headers)
    assert deleted.status_code == 200
    assert deleted.json() == {"message": "quick reply deleted", "id": made["id"]}
    assert await stored(database) == []
    again = await client.delete(f"{BASE}/{made['id']}", headers=tenant.headers)
    problem(again, 404)

    log = await client.get("/api/activity-logs", params={"per_page": 100}, headers=tenant.headers)
    actions = {entry["action"] for entry in log.json()["activity_logs"]}
    assert {"quick_reply.created", "quick_reply.updated", "quick_reply.deleted"} <= actions


async def test_a_shortcut_is_unique_ignoring_case(
    client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    first = await new_reply(client, tenant, shortcut="Hello")
    body = {"shortcut": "hELLO", "title": "Again", "content": "Hi"}
    problem(await client.post(BASE, json=body, headers=tenant.headers), 409)
    other = await new_reply(client, tenant, shortcut="Other")
    renamed = await client.patch(f"{BASE}/{other['id']}", json={"shortcut": "HELLO"}, headers=tenant.headers)
    problem(renamed, 409)
    # Its own shortcut in another case is a rename, not a conflict.
    recased = await client.patch(f"{BASE}/{first['id']}", json={"shortcut": "HELLO"}, headers=tenant.headers)
    assert recased.json()["shortcut"] == "HELLO"
    # Another organisation has shortcuts of its own.
    await new_reply(client, other_tenant, shortcut="hello")


async def test_rules_are_422_and_store_nothing(
    client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant, database: str
) -> None:
    their_division = await new_division(client, other_tenant)
    their_media = await upload_media(client, other_tenant)
    base = {"shortcut": "rule", "title": "T", "content": "Hi"}
    for change, field in [
        ({"content": "Hi {{contact.nickname}}"}, "content"),
        ({"content": "{{ password }}"}, "content"),
        ({"division_id": their_division}, "division_id"),
        ({"division_id": NOWHERE}, "division_id"),
        ({"media_id": their_media}, "media_id"),
        ({"media_id": NOWHERE}, "media_id"),
    ]:
        body = problem(await client.post(BASE, json=base | change, headers=tenant.headers), 422)
        assert body["errors"][0]["field"] == field, change
    made = await new_reply(client, tenant, **base)
    for change in ({"content": "{{agent.nam}}"}, {"division_id": their_division}, {"media_id": NOWHERE}):
        problem(await client.patch(f"{BASE}/{made['id']}", json=change, headers=tenant.headers), 422)
    rows = await stored(database)
    assert [(r["content"], r["division_id"], r["media_id"]) for r in rows] == [("Hi", None, None)]


async def test_schema_errors_are_400_and_store_nothing(client: AsyncTestClient, tenant: Tenant, database: str) -> None:
    base = {"shortcut": "ok", "title": "T", "content": "Hi"}
    for change in [
        {"shortcut": "has space"},
        {"shortcut": "-leading"},
        {"shortcut": "x" * 51},
        {"shortcut": ""},
        {"title": "   "},
        {"content": "x" * 4097},
        {"content": "nul\x00"},
        {"division_id": "not-a-uuid"},
        {"colour": "red"},
    ]:
        problem(await client.post(BASE, json=base | change, headers=tenant.headers), 400)
    problem(await client.post(BASE, json={"title": "T", "content": "Hi"}, headers=tenant.headers), 400)
    assert await stored(database) == []
    made = await new_reply(client, tenant, **base)
    problem(await client.patch(f"{BASE}/{made['id']}", json={"shortcut": "a b"}, headers=tenant.headers), 400)
    problem(await client.post(f"{BASE}/{made['id']}/use", json={"conversation_id": 5}, headers=tenant.headers), 400)
    problem(await client.get(BASE, params={"sort": "random"}, headers=tenant.headers), 400)
    assert [r["shortcut"] for r in await stored(database)] == ["ok"]


async def test_another_tenants_reply_is_404_on_every_route(
    client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant, database: str
) -> None:
    theirs = await new_reply(client, other_tenant)
    path = f"{BASE}/{theirs['id']}"
    for response in [
        await client.patch(path, json={"title": "Mine"}, headers=tenant.headers),
        await client.delete(path, headers=tenant.headers),
        await client.post(f"{path}/use", headers=tenant.headers),
        await client.post(f"{path}/favorite", headers=tenant.headers),
        await client.delete(f"{path}/favorite", headers=tenant.headers),
    ]:
        problem(response, 404)
    (row,) = await stored(database)
    assert row["title"] == "Greeting"
    assert theirs["shortcut"] not in shortcuts(await listing(client, tenant))
    assert theirs["shortcut"] not in await export(client, tenant)


async def test_agents_use_and_favourite_but_do_not_manage(client: AsyncTestClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant)
    supervisor = await create_agent(client, tenant, role="supervisor")
    made = await new_reply(client, supervisor)
    body = {"shortcut": "agentmade", "title": "T", "content": "Hi"}
    problem(await client.post(BASE, json=body, headers=agent["headers"]), 403)
    problem(await client.patch(f"{BASE}/{made['id']}", json={"title": "X"}, headers=agent["headers"]), 403)
    problem(await client.delete(f"{BASE}/{made['id']}", headers=agent["headers"]), 403)
    problem(await client.get(f"{BASE}/export", headers=agent["headers"]), 403)
    problem(await import_csv(client, agent, HEADER), 403)
    assert shortcuts(await listing(client, agent)) == [made["shortcut"]]
    used = await client.post(f"{BASE}/{made['id']}/use", headers=agent["headers"])
    assert used.status_code == 200
    assert (await client.post(f"{BASE}/{made['id']}/favorite", headers=agent["headers"])).status_code == 200


# ---------------------------------------------------------------- use and favourites


async def test_use_counts_and_renders_for_a_conversation(client: AsyncTestClient, tenant: Tenant, db: Any) -> None:
    made = await new_reply(client, tenant, content="Hi {{contact.name}}, {{agent.name}} here ({{conversation.id}})")
    first = await client.post(f"{BASE}/{made['id']}/use", headers=tenant.headers)
    assert first.status_code == 200
    assert first.json()["usage_count"] == 1
    assert first.json()["last_used_at"] is not None
    assert first.json()["rendered_content"] is None

    conversation_id = str((await ingest(db, tenant, contact_name="Grace Hopper")).conversation_id)
    second = await client.post(
        f"{BASE}/{made['id']}/use", json={"conversation_id": conversation_id}, headers=tenant.headers
    )
    assert second.status_code == 200, second.text
    assert second.json()["usage_count"] == 2
    assert second.json()["last_used_at"] >= first.json()["last_used_at"]
    assert second.json()["rendered_content"] == f"Hi Grace Hopper, Ada Admin here ({conversation_id})"

    unknown = await client.post(f"{BASE}/{made['id']}/use", json={"conversation_id": NOWHERE}, headers=tenant.headers)
    problem(unknown, 422)
    (row,) = (await listing(client, tenant))["quick_replies"]
    assert row["usage_count"] == 2  # the refused use counted nothing


async def test_concurrent_uses_all_count(client: AsyncTestClient, tenant: Tenant) -> None:
    import asyncio

    made = await new_reply(client, tenant)
    responses = await asyncio.gather(
        *[client.post(f"{BASE}/{made['id']}/use", headers=tenant.headers) for _ in range(8)]
    )
    assert all(r.status_code == 200 for r in responses)
    (row,) = (await listing(client, tenant))["quick_replies"]
    assert row["usage_count"] == 8


async def test_favourites_are_per_agent(client: AsyncTestClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant)
    older = await new_reply(client, tenant, shortcut="older")
    await new_reply(client, tenant, shortcut="newer")
    path = f"{BASE}/{older['id']}/favorite"
    added = await client.post(path, headers=agent["headers"])
    assert added.status_code == 200
    assert added.json()["is_favorite"] is True
    again = await client.post(path, headers=agent["headers"])  # idempotent
    assert again.status_code == 200
    assert again.json()["is_favorite"] is True

    mine = await listing(client, agent, favorites_first="true")
    assert shortcuts(mine) == ["older", "newer"]
    assert [r["is_favorite"] for r in mine["quick_replies"]] == [True, False]
    assert shortcuts(await listing(client, agent)) == ["newer", "older"]
    # The admin's list knows nothing of the agent's favourite.
    admins = await listing(client, tenant, favorites_first="true")
    assert shortcuts(admins) == ["newer", "older"]
    assert not any(r["is_favorite"] for r in admins["quick_replies"])

    assert (await client.delete(path, headers=agent["headers"])).status_code == 204
    assert (await client.delete(path, headers=agent["headers"])).status_code == 204
    assert shortcuts(await listing(client, agent, favorites_first="true")) == ["newer", "older"]
    problem(await client.delete(f"{BASE}/{NOWHERE}/favorite", headers=agent["headers"]), 404)
    problem(await client.post(f"{BASE}/{NOWHERE}/favorite", headers=agent["headers"]), 404)


# ---------------------------------------------------------------- listing


async def test_search_sorts_and_pages(client: AsyncTestClient, tenant: Tenant) -> None:
    a = await new_reply(client, tenant, shortcut="refund", title="Money back", content="We refund in 5 days")
    b = await new_reply(client, tenant, shortcut="hours", title="Opening HOURS", content="9 to 5")
    c = await new_reply(client, tenant, shortcut="bye", title="Goodbye", content="See you, {{contact.name}}")
    assert shortcuts(await listing(client, tenant, q="REFUND")) == ["refund"]
    assert shortcuts(await listing(client, tenant, q="hours")) == ["hours"]  # title, any case
    assert shortcuts(await listing(client, tenant, q="see you")) == ["bye"]  # content
    assert (await listing(client, tenant, q="nothing like it"))["total"] == 0

    for _ in range(2):
        await client.post(f"{BASE}/{b['id']}/use", headers=tenant.headers)
    await client.post(f"{BASE}/{a['id']}/use", headers=tenant.headers)
    assert shortcuts(await listing(client, tenant, sort="usage")) == ["hours", "refund", "bye"]
    assert shortcuts(await listing(client, tenant, sort="usage", sort_order="asc")) == ["bye", "refund", "hours"]
    assert shortcuts(await listing(client, tenant)) == ["bye", "hours", "refund"]

    first = await listing(client, tenant, per_page=2)
    assert shortcuts(first) == ["bye", "hours"]
    assert first["total"] == 3
    rest = await listing(client, tenant, per_page=2, cursor=first["next_cursor"])
    assert shortcuts(rest) == ["refund"]
    assert rest["next_cursor"] is None
    by_usage = await listing(client, tenant, per_page=2, page=2, sort="usage")
    assert shortcuts(by_usage) == ["bye"]
    assert by_usage["next_cursor"] is None
    cursor_with_usage = await client.get(
        BASE, params={"sort": "usage", "cursor": first["next_cursor"]}, headers=tenant.headers
    )
    problem(cursor_with_usage, 422)
    assert c["id"] in {r["id"] for r in (await listing(client, tenant))["quick_replies"]}


async def test_agents_see_replies_of_no_division_and_of_their_own(client: AsyncTestClient, tenant: Tenant) -> None:
    agent = await create_agent(client, tenant)
    theirs = await new_division(client, tenant, [agent["id"]])
    elsewhere = await new_division(client, tenant)
    await new_reply(client, tenant, shortcut="everyone")
    await new_reply(client, tenant, shortcut="ours", division_id=theirs)
    hidden = await new_reply(client, tenant, shortcut="hidden", division_id=elsewhere)

    assert sorted(shortcuts(await listing(client, agent))) == ["everyone", "ours"]
    assert (await listing(client, agent))["total"] == 2
    assert shortcuts(await listing(client, agent, division_id=theirs)) == ["ours"]
    assert shortcuts(await listing(client, agent, division_id=elsewhere)) == []
    assert sorted(shortcuts(await listing(client, tenant))) == ["everyone", "hidden", "ours"]
    assert shortcuts(await listing(client, tenant, division_id=elsewhere)) == ["hidden"]
    for response in [
        await client.post(f"{BASE}/{hidden['id']}/use", headers=agent["headers"]),
        await client.post(f"{BASE}/{hidden['id']}/favorite", headers=agent["headers"]),
        await client.delete(f"{BASE}/{hidden['id']}/favorite", headers=agent["headers"]),
    ]:
        problem(response, 404)
    (row,) = (await listing(client, tenant, division_id=elsewhere))["quick_replies"]
    assert row["usage_count"] == 0


# ---------------------------------------------------------------- CSV


async def test_export_escapes_formulas_and_import_reads_them_back(
    client: AsyncTestClient, tenant: Tenant, database: str
) -> None:
    division_id = await new_division(client, tenant)
    await new_reply(client, tenant, shortcut="formula", title="=SUM(A1:A2)", content='+1, said "she"\nthen @me')
    await new_reply(
        client, tenant, shortcut="quoted", title="'already quoted", content="-5 °C 🌡", division_id=division_id
    )
    text = await export(client, tenant)
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == ["shortcut", "title", "content", "division_id", "media_id"]
    assert rows[1] == ["formula", "'=SUM(A1:A2)", '\'+1, said "she"\nthen @me', "", ""]
    assert rows[2] == ["quoted", "''already quoted", "'-5 °C 🌡", division_id, ""]

    before = await stored(database)
    answer = await import_csv(client, tenant, text)
    assert answer.status_code == 200, answer.text
    assert answer.json()["unchanged"] == 2
    assert answer.json()["created"] == answer.json()["updated"] == 0
    assert await stored(database) == before


async def test_import_creates_updates_and_refuses_row_by_row(
    client: AsyncTestClient, tenant: Tenant, database: str
) -> None:
    existing = await new_reply(client, tenant, shortcut="Hello", title="Old", content="Old text")
    text = (
        HEADER
        + "hello,New,New text,,\r\n"
        + 'fresh,Fresh,"multi\nline",,\r\n'
        + "bad shortcut,T,C,,\r\n"
        + "vars,T,{{contact.secret}},,\r\n"
        + f"nodiv,T,C,{NOWHERE},\r\n"
        + "FRESH,Again,C,,\r\n"
        + "short,row\r\n"
        + "\r\n"
        + "last,T,C,,\r\n"
        + f"nomedia,T,C,,{NOWHERE}\r\n"
    )
    before = await stored(database)
    dry = await import_csv(client, tenant, text, dry_run="true")
    assert dry.status_code == 200, dry.text
    assert await stored(database) == before
    report = dry.json()
    assert report["dry_run"] is True
    assert (report["created"], report["updated"], report["refused"]) == (2, 1, 6)
    by_line = {row["line"]: row for row in report["rows"]}
    assert by_line[2]["status"] == "updated"
    assert by_line[2]["id"] == existing["id"]
    assert by_line[3]["status"] == "created"
    assert by_line[3]["id"] is None
    assert by_line[5]["status"] == "refused"
    assert "shortcut" in by_line[5]["reason"]
    assert by_line[6]["status"] == "refused"
    assert "contact.secret" in by_line[6]["reason"]
    assert by_line[7]["status"] == "refused"
    assert "division" in by_line[7]["reason"]
    assert by_line[8]["status"] == "refused"
    assert "line 3" in by_line[8]["reason"]
    assert by_line[9]["status"] == "refused"
    assert "cells" in by_line[9]["reason"]
    assert by_line[11]["status"] == "created"
    assert by_line[12]["status"] == "refused"
    assert "media" in by_line[12]["reason"]
    (only,) = await stored(database)
    assert only["title"] == "Old"

    done = await import_csv(client, tenant, text)
    assert done.status_code == 200, done.text
    assert [row["status"] for row in done.json()["rows"]] == [row["status"] for row in report["rows"]]
    rows = {r["shortcut"]: r for r in await stored(database)}
    assert set(rows) == {"hello", "fresh", "last"}
    assert rows["hello"]["title"] == "New"
    assert rows["fresh"]["content"] == "multi\nline"
    assert str(rows["fresh"]["id"]) == next(r["id"] for r in done.json()["rows"] if r["line"] == 3)
    log = await client.get("/api/activity-logs", params={"per_page": 100}, headers=tenant.headers)
    assert "quick_replies.imported" in {entry["action"] for entry in log.json()["activity_logs"]}


async def test_import_refuses_bad_files_whole(client: AsyncTestClient, tenant: Tenant, database: str) -> None:
    for text in [
        "",
        "shortcut,title\r\nx,y\r\n",
        "shortcut,title,content,colour\r\nx,y,z,red\r\n",
        "shortcut,title,content,title\r\nx,y,z,w\r\n",
        b"shortcut,title,content\r\nx,\xff\xfe,z\r\n",
        'shortcut,title,content\r\nx,"unterminated,z\r\n',
    ]:
        problem(await import_csv(client, tenant, text), 422)
    too_many = HEADER + "".join(f"r{i},T,C,,\r\n" for i in range(MAX_IMPORT_ROWS + 1))
    problem(await import_csv(client, tenant, too_many), 422)
    too_large = HEADER + "big,T," + "x" * MAX_IMPORT_BYTES + ",,\r\n"
    problem(await import_csv(client, tenant, too_large), 413)
    # Far past the limit the framework stops reading the body: still a 413 problem, never a 500.
    problem(await import_csv(client, tenant, too_large + "x" * MAX_IMPORT_BYTES), 413)
    problem(await client.post(f"{BASE}/import", json={"file": "x"}, headers=tenant.headers), 400)
    assert await stored(database) == []
    # As many rows as allowed go in.
    at_limit = HEADER + "".join(f"r{i},T,C,,\r\n" for i in range(MAX_IMPORT_ROWS))
    answer = await import_csv(client, tenant, at_limit)
    assert answer.status_code == 200, answer.text
    assert answer.json()["created"] == MAX_IMPORT_ROWS


# Text a spreadsheet or a CSV reader could trip on; free text may not be blank nor hold NUL.
awkward = st.text(
    alphabet=st.sampled_from(list(",\"'\n\r\t =+-@;|a Z0🙂é\u2028")) | st.characters(blacklist_categories=("Cs",)),
    min_size=1,
    max_size=40,
).filter(lambda s: "\x00" not in s and s.strip() != "" and s.strip(" \t\n\r\x0b\x0c") != "")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.tuples(awkward, awkward), min_size=1, max_size=4))
async def test_export_then_import_changes_nothing(
    client: AsyncTestClient, tenant: Tenant, database: str, texts: list[tuple[str, str]]
) -> None:
    made = []
    for title, content in texts:
        body = {"shortcut": f"h{uuid4().hex[:12]}", "title": title, "content": content}
        response = await client.post(BASE, json=body, headers=tenant.headers)
        if response.status_code == 400:
            continue  # text the schema refuses (a blank made of exotic spaces) is not the point here
        assert response.status_code == 201, response.text
        made.append(response.json()["id"])
    try:
        before = await stored(database)
        answer = await import_csv(client, tenant, await export(client, tenant))
        assert answer.status_code == 200, answer.text
        assert answer.json()["refused"] == 0, answer.json()
        assert answer.json()["created"] == answer.json()["updated"] == 0
        assert await stored(database) == before
    finally:
        for quick_reply_id in made:
            await client.delete(f"{BASE}/{quick_reply_id}", headers=tenant.headers)
