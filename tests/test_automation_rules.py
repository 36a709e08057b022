"""The automation rules API as supervisors use it: rules, their switches and settings, the dry
run, the global control and the stats drawn from the runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from arq import ArqRedis
from litestar.testing import AsyncTestClient

from omnistream.db import Database
from tests.automation_helpers import process_all, runs_of
from tests.conftest import Tenant, create_agent, ingest, problem

RULES = "/api/automation-rules"
REFUND = {
    "name": "Refunds to billing",
    "trigger_type": "message_received_inbound",
    "conditions": {"message_contains_any": ["refund"]},
    "actions": [{"type": "add_tags", "tags": ["refund"]}],
}


def soon(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta or {"hours": 1})).isoformat()


async def create(client: AsyncTestClient, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    response = await client.post(RULES, json=REFUND | fields, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def test_a_rule_is_created_listed_read_changed_and_deleted(client: AsyncTestClient, tenant: Tenant) -> None:
    rule = await create(client, tenant, priority=5)
    assert rule["is_active"]
    assert rule["rollout_percentage"] == 100
    assert rule["created_by"] == tenant.admin_id
    assert rule["schedule_settings"]["enabled"] is False
    low = await create(client, tenant, name="Low", trigger_type="conversation_created", conditions={}, priority=1)

    listed = (await client.get(RULES, headers=tenant.headers)).json()
    assert [r["id"] for r in listed] == [rule["id"], low["id"]]  # highest priority first, as they run
    only = (await client.get(RULES, params={"trigger_type": "conversation_created"}, headers=tenant.headers)).json()
    assert [r["id"] for r in only] == [low["id"]]

    changed = await client.patch(
        f"{RULES}/{rule['id']}", json={"name": "Refunds", "priority": 0}, headers=tenant.headers
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["name"], changed.json()["priority"]) == ("Refunds", 0)
    assert changed.json()["conditions"] == REFUND["conditions"]  # what was not given stays
    assert (await client.get(f"{RULES}/{rule['id']}", headers=tenant.headers)).json()["name"] == "Refunds"

    gone = await client.delete(f"{RULES}/{rule['id']}", headers=tenant.headers)
    assert gone.status_code == 200
    assert gone.json()["id"] == rule["id"]
    problem(await client.get(f"{RULES}/{rule['id']}", headers=tenant.headers), 404)


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"type": "explode"}, 400, "actions"),
        ({"type": "add_tags"}, 400, "tags"),
        ({"type": "assign_agent"}, 422, "actions[0].agent_id"),
        ({"type": "send_message", "text": "Hi {{contact.nickname}}"}, 422, "actions[0].text"),
    ],
)
async def test_a_bad_action_is_refused_naming_it(
    client: AsyncTestClient, tenant: Tenant, body: dict[str, Any], status: int, field: str
) -> None:
    response = await client.post(RULES, json=REFUND | {"actions": [body]}, headers=tenant.headers)
    assert field in str(problem(response, status))
    assert (await client.get(RULES, headers=tenant.headers)).json() == []


async def test_bad_conditions_and_fields_are_refused(client: AsyncTestClient, tenant: Tenant) -> None:
    cases = [
        (REFUND | {"conditions": {"message_matches": "(unclosed"}}, 422),
        (REFUND | {"trigger_type": "conversation_created"}, 422),  # message conditions on another trigger
        (REFUND | {"rollout_percentage": 0}, 400),
        (REFUND | {"trigger_type": "whenever"}, 400),
        (REFUND | {"colour": "red"}, 400),
        (REFUND | {"alert_settings": {"medium_threshold_pct": 50, "high_threshold_pct": 10}}, 422),
        (REFUND | {"actions": [{"type": "assign_agent", "agent_id": str(uuid4())}]}, 422),
        (REFUND | {"actions": [{"type": "assign_division", "division_id": str(uuid4())}]}, 422),
    ]
    for body, status in cases:
        problem(await client.post(RULES, json=body, headers=tenant.headers), status)
    assert (await client.get(RULES, headers=tenant.headers)).json() == []
    rule = await create(client, tenant)
    problem(await client.patch(f"{RULES}/{rule['id']}", json={"cooldown_secs": -1}, headers=tenant.headers), 400)
    problem(
        await client.patch(f"{RULES}/{rule['id']}", json={"trigger_type": "status_changed"}, headers=tenant.headers),
        422,
    )
    assert (await client.get(f"{RULES}/{rule['id']}", headers=tenant.headers)).json() == rule


async def test_a_webhook_secret_is_never_shown_and_kept_when_sent_back(
    client: AsyncTestClient, tenant: Tenant, db: Database
) -> None:
    hook = {"type": "send_webhook", "url": "https://hooks.example.com/omni", "secret": "s3cret-value"}
    rule = await create(client, tenant, actions=[hook])
    assert rule["actions"][0]["secret"] == "(hidden)"
    assert "s3cret" not in (await client.get(RULES, headers=tenant.headers)).text
    again = await client.patch(f"{RULES}/{rule['id']}", json={"actions": rule["actions"]}, headers=tenant.headers)
    assert again.status_code == 200, again.text
    async with db.tenant(UUID(tenant.id)) as conn:
        stored = await conn.fetchval("SELECT actions FROM automation_rules WHERE id = $1", UUID(rule["id"]))
    assert stored[0]["secret"] == "s3cret-value"
    # The placeholder stands for a saved secret only.
    bare = await create(client, tenant, actions=[{k: v for k, v in hook.items() if k != "secret"}])
    problem(await client.patch(f"{RULES}/{bare['id']}", json={"actions": rule["actions"]}, headers=tenant.headers), 422)


async def test_toggle_snooze_and_the_snoozed_list(client: AsyncTestClient, tenant: Tenant) -> None:
    rule, other = await create(client, tenant), await create(client, tenant, name="Other")
    off = await client.post(f"{RULES}/{rule['id']}/toggle", json={"is_active": False}, headers=tenant.headers)
    assert off.json() == {"message": "automation rule is inactive", "id": rule["id"], "is_active": False}
    assert [
        r["id"] for r in (await client.get(RULES, params={"is_active": "false"}, headers=tenant.headers)).json()
    ] == [rule["id"]]

    until = soon(hours=2)
    snoozed = await client.post(f"{RULES}/{other['id']}/snooze", json={"snoozed_until": until}, headers=tenant.headers)
    assert snoozed.status_code == 200, snoozed.text
    problem(
        await client.post(
            f"{RULES}/{other['id']}/snooze", json={"snoozed_until": soon(hours=-1)}, headers=tenant.headers
        ),
        422,
    )
    listed = (await client.get(f"{RULES}/snoozed", headers=tenant.headers)).json()
    assert [r["id"] for r in listed] == [other["id"]]
    state = (await client.get(f"{RULES}/{other['id']}/effective-state", headers=tenant.headers)).json()
    assert (state["is_snoozed"], state["effective_active"]) == (True, False)
    assert [r["code"] for r in state["reasons"]] == ["snoozed"]

    await client.post(f"{RULES}/{other['id']}/unsnooze", headers=tenant.headers)
    assert (await client.get(f"{RULES}/snoozed", headers=tenant.headers)).json() == []

    bulk = await client.post(
        f"{RULES}/snooze-bulk",
        json={"rule_ids": [rule["id"], other["id"], str(uuid4())], "snoozed_until": until},
        headers=tenant.headers,
    )
    assert bulk.json()["snoozed_count"] == 2
    assert len((await client.get(f"{RULES}/snoozed", params={"per_page": 1}, headers=tenant.headers)).json()) == 1
    problem(
        await client.post(
            f"{RULES}/snooze-bulk", json={"rule_ids": [], "snoozed_until": until}, headers=tenant.headers
        ),
        400,
    )


async def test_settings_presets_rollout_and_the_schedule_preview(client: AsyncTestClient, tenant: Tenant) -> None:
    rule = await create(client, tenant)
    path = f"{RULES}/{rule['id']}"
    preset = await client.patch(f"{path}/alert-settings", json={"preset": "aggressive"}, headers=tenant.headers)
    assert preset.json()["alert_settings"]["min_matched_runs"] == 5
    problem(await client.patch(f"{path}/alert-settings", json={}, headers=tenant.headers), 422)
    problem(await client.patch(f"{path}/alert-settings", json={"preset": "reckless"}, headers=tenant.headers), 400)

    assert (await client.patch(f"{path}/rollout", json={"rollout_percentage": 25}, headers=tenant.headers)).json()[
        "rollout_percentage"
    ] == 25
    problem(await client.patch(f"{path}/rollout", json={"rollout_percentage": 101}, headers=tenant.headers), 400)

    # Mondays 22:00 to Tuesday 06:00 at UTC+7: 15:00 to 23:00 UTC on Monday.
    schedule = {
        "enabled": True,
        "active_weekdays": [0],
        "start_hour_utc": 22,
        "end_hour_utc": 6,
        "timezone_offset_minutes": 420,
    }
    saved = await client.patch(
        f"{path}/schedule-settings", json={"schedule_settings": schedule}, headers=tenant.headers
    )
    assert saved.status_code == 200, saved.text
    preview = await client.get(
        f"{path}/schedule-preview", params={"start_at": "2026-11-30T00:00:00Z", "hours": 168}, headers=tenant.headers
    )
    assert preview.json()["windows"] == [{"start": "2026-11-30T15:00:00Z", "end": "2026-11-30T23:00:00Z"}]
    problem(await client.get(f"{path}/schedule-preview", params={"hours": 0}, headers=tenant.headers), 400)
    problem(
        await client.get(
            f"{path}/schedule-preview", params={"start_at": "2026-02-30T00:00:00Z"}, headers=tenant.headers
        ),
        422,
    )


async def test_the_global_pause_stops_every_rule_and_ends_by_itself(client: AsyncTestClient, tenant: Tenant) -> None:
    rule = await create(client, tenant)
    control = (await client.get("/api/automation-control", headers=tenant.headers)).json()
    assert control["is_paused"] is False
    until = soon(minutes=30)
    paused = await client.patch(
        "/api/automation-control",
        json={"is_paused": True, "pause_reason": "migration", "paused_until": until},
        headers=tenant.headers,
    )
    assert paused.status_code == 200
    assert paused.json()["updated_by"] == tenant.admin_id
    state = (await client.get(f"{RULES}/{rule['id']}/effective-state", headers=tenant.headers)).json()
    assert state["global_paused"]
    assert not state["effective_active"]
    assert datetime.fromisoformat(state["reasons"][0]["until"]) == datetime.fromisoformat(until)
    problem(
        await client.patch(
            "/api/automation-control", json={"is_paused": False, "paused_until": until}, headers=tenant.headers
        ),
        422,
    )
    problem(await client.patch("/api/automation-control", json={"is_paused": "yes"}, headers=tenant.headers), 400)


async def test_the_dry_run_matches_and_previews_without_changing_anything(
    client: AsyncTestClient, tenant: Tenant, db: Database
) -> None:
    rule = await create(
        client,
        tenant,
        actions=[{"type": "send_message", "text": "Hi {{contact.name}}, refunds take 3 days"}],
    )
    payload = {"channel": "whatsapp", "message": {"text": "I want a REFUND"}, "contact_name": "Dewi"}
    result = await client.post(
        f"{RULES}/test", json={"rule_id": rule["id"], "event_payload": payload}, headers=tenant.headers
    )
    assert result.status_code == 200, result.text
    assert result.json()["matched"]
    assert result.json()["would_execute"]
    assert result.json()["actions_preview"][0]["text"] == "Hi Dewi, refunds take 3 days"
    miss = await client.post(
        f"{RULES}/test",
        json={"rule_id": rule["id"], "event_payload": payload | {"message": {"text": "hello"}}},
        headers=tenant.headers,
    )
    assert (miss.json()["matched"], miss.json()["would_execute"]) == (False, False)
    adhoc = await client.post(
        f"{RULES}/test",
        json={
            "trigger_type": "conversation_created",
            "conditions": {"channel_in": ["email"]},
            "event_payload": {"channel": "email"},
        },
        headers=tenant.headers,
    )
    assert adhoc.json()["matched"] is True
    problem(await client.post(f"{RULES}/test", json={"event_payload": {}}, headers=tenant.headers), 422)
    problem(await client.post(f"{RULES}/test", json={"event_payload": {"channel": "fax"}}, headers=tenant.headers), 400)
    problem(
        await client.post(f"{RULES}/test", json={"rule_id": str(uuid4()), "event_payload": {}}, headers=tenant.headers),
        422,
    )
    async with db.tenant(UUID(tenant.id)) as conn:
        assert await conn.fetchval("SELECT count(*) FROM messages") == 0


async def test_stats_count_the_runs_of_the_window(
    client: AsyncTestClient, tenant: Tenant, db: Database, arq: ArqRedis
) -> None:
    rule = await create(client, tenant)
    # Closed, the conversation takes no message: the second action fails, and with it the run.
    failing = await create(
        client,
        tenant,
        name="Close then write",
        actions=[{"type": "set_status", "status": "closed"}, {"type": "send_message", "text": "bye"}],
    )
    await ingest(db, tenant, "refund please")
    await ingest(db, tenant, "another refund")
    await process_all(db, arq)
    runs = await runs_of(db, tenant)
    assert len(runs) == 4

    overview = (await client.get(f"{RULES}/stats/overview", headers=tenant.headers)).json()
    assert (overview["total_rules"], overview["active_rules"], overview["total_runs"], overview["matched_runs"]) == (
        2,
        2,
        4,
        4,
    )
    assert overview["total_events"] >= 4
    executed = sum(r["executed"] for r in runs)
    assert overview["executed_runs"] == executed

    series = (await client.get(f"{RULES}/stats/timeseries", params={"window_days": 3}, headers=tenant.headers)).json()
    assert len(series) == 3
    assert series[-1]["bucket"] == datetime.now(UTC).date().isoformat()
    assert sum(b["total_runs"] for b in series) == 4

    mine = (await client.get(f"{RULES}/{rule['id']}/stats", headers=tenant.headers)).json()
    assert (mine["total_runs"], mine["matched_runs"], mine["executed_runs"], mine["failure_rate_pct"]) == (2, 2, 2, 0)
    per_rule = (await client.get(f"{RULES}/{rule['id']}/stats/timeseries", headers=tenant.headers)).json()
    assert sum(b["total_runs"] for b in per_rule) == 2

    alerts = (await client.get(f"{RULES}/stats/alerts", headers=tenant.headers)).json()
    by_rule = {a["rule_id"]: a for a in alerts}
    assert by_rule[rule["id"]]["alert_level"] == "ok"
    bad = by_rule[failing["id"]]
    assert (bad["matched_runs"], bad["executed_runs"], bad["failure_rate_pct"]) == (2, 0, 100.0)
    assert bad["alert_level"] == "ok"  # below its min_matched_runs (20 by default)
    lower = {"min_matched_runs": 1, "medium_threshold_pct": 10, "high_threshold_pct": 50}
    await client.patch(
        f"{RULES}/{failing['id']}/alert-settings", json={"alert_settings": lower}, headers=tenant.headers
    )
    high = (
        await client.get(f"{RULES}/stats/alerts", params={"failure_rate_threshold_pct": 1}, headers=tenant.headers)
    ).json()
    assert [(a["rule_id"], a["alert_level"]) for a in high] == [(failing["id"], "high")]
    problem(await client.get(f"{RULES}/stats/timeseries", params={"bucket_days": 31}, headers=tenant.headers), 400)
    problem(await client.get(f"{RULES}/stats/overview", params={"window_days": 0}, headers=tenant.headers), 400)


async def test_another_tenants_rule_is_not_found_and_agents_are_refused(
    client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    rule = await create(client, tenant)
    path = f"{RULES}/{rule['id']}"
    for method, url, body in [
        ("GET", path, None),
        ("PATCH", path, {"name": "mine"}),
        ("DELETE", path, None),
        ("POST", f"{path}/toggle", {"is_active": False}),
        ("POST", f"{path}/snooze", {"snoozed_until": soon()}),
        ("POST", f"{path}/unsnooze", None),
        ("GET", f"{path}/stats", None),
        ("GET", f"{path}/stats/timeseries", None),
        ("GET", f"{path}/effective-state", None),
        ("PATCH", f"{path}/alert-settings", {"preset": "balanced"}),
        ("PATCH", f"{path}/schedule-settings", {"schedule_settings": {"enabled": False}}),
        ("PATCH", f"{path}/rollout", {"rollout_percentage": 5}),
        ("GET", f"{path}/schedule-preview", None),
    ]:
        response = await client.request(method, url, json=body, headers=other_tenant.headers)
        problem(response, 404)
    dry_run = {"rule_id": rule["id"], "event_payload": {}}
    problem(await client.post(f"{RULES}/test", json=dry_run, headers=other_tenant.headers), 422)
    bulk = await client.post(
        f"{RULES}/snooze-bulk", json={"rule_ids": [rule["id"]], "snoozed_until": soon()}, headers=other_tenant.headers
    )
    assert bulk.json()["snoozed_count"] == 0
    assert (await client.get(RULES, headers=other_tenant.headers)).json() == []
    assert (await client.get(path, headers=tenant.headers)).json() == rule

    agent = await create_agent(client, tenant, role="agent")
    problem(await client.get(RULES, headers=agent["headers"]), 403)
    problem(await client.post(RULES, json=REFUND, headers=agent["headers"]), 403)
    problem(await client.patch("/api/automation-control", json={"is_paused": True}, headers=agent["headers"]), 403)
    supervisor = await create_agent(client, tenant, role="supervisor")
    assert (await client.get(RULES, headers=supervisor["headers"])).status_code == 200
    problem(await client.get(RULES), 401)


async def test_a_rule_made_through_the_api_acts_on_the_next_message(
    client: AsyncTestClient, tenant: Tenant, db: Database, arq: ArqRedis
) -> None:
    await create(client, tenant)
    created = await ingest(db, tenant, "I need a refund")
    await process_all(db, arq)
    async with db.tenant(UUID(tenant.id)) as conn:
        tags = await conn.fetchval("SELECT tags FROM conversations WHERE id = $1", created.conversation_id)
    assert tags == ["refund"]
    # Switched off through the API, the next message is left alone.
    [rule] = (await client.get(RULES, headers=tenant.headers)).json()
    await client.post(f"{RULES}/{rule['id']}/toggle", json={"is_active": False}, headers=tenant.headers)
    second = await ingest(db, tenant, "refund again")
    await process_all(db, arq)
    async with db.tenant(UUID(tenant.id)) as conn:
        tags = await conn.fetchval("SELECT tags FROM conversations WHERE id = $1", second.conversation_id)
    assert tags == []
