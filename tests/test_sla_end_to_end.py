"""SLA with real processes (`omnistream dev`: the API on granian and an arq worker): a customer's
message starts the first-response clock, the worker's monitor records its breach, and an
automation rule on sla_breached tags the conversation."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import asyncpg
import httpx

from tests.test_channels_end_to_end import eventually
from tests.test_end_to_end import system  # noqa: F401  (the fixture)

BREACH_WAIT_SECONDS = 30
"""The monitor runs every ten seconds; the rest is the event's way through the automation worker."""


async def make_overdue(database: str, conversation_id: str) -> int:
    """Move the first-response due time into the past, as if the minute had gone by."""
    conn = await asyncpg.connect(database)
    try:
        status = await conn.execute(
            "UPDATE sla_targets SET due_at = now() - interval '1 second' "
            "WHERE conversation_id = $1 AND target = 'first_response'",
            conversation_id,
        )
    finally:
        await conn.close()
    return int(status.split()[-1])


def test_a_breach_recorded_by_the_worker_fires_an_automation_rule(
    system: tuple[str, dict[str, str]],  # noqa: F811
    database: str,
) -> None:
    base, env = system
    with httpx.Client(base_url=base, timeout=10) as http:
        registered = http.post(
            "/api/auth/register",
            json={"organization_name": "SLA Co", "name": "Ada", "email": "ada@sla.test", "password": "a long password"},
        )
        assert registered.status_code == 201, registered.text
        slug = registered.json()["agent"]["tenant"]["slug"]
        auth = {"authorization": f"Bearer {registered.json()['access_token']}"}
        http.cookies.clear()
        policy = http.post(
            "/api/sla-policies",
            json={"name": "Fast", "targets": {"first_response_minutes": 1, "resolution_minutes": 600}},
            headers=auth,
        )
        assert policy.status_code == 201, policy.text
        rule = http.post(
            "/api/automation-rules",
            json={
                "name": "Escalate late replies",
                "trigger_type": "sla_breached",
                "actions": [{"type": "add_tags", "tags": ["sla-breached"]}],
            },
            headers=auth,
        )
        assert rule.status_code == 201, rule.text

        sent = subprocess.run(
            [sys.executable, "-m", "omnistream.cli", "inbound", "--tenant", slug, "--from", "+628123450000",
             "--name", "Dewi", "--text", "Where is my order?"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )  # fmt: skip
        assert sent.returncode == 0, sent.stdout + sent.stderr
        [conversation] = eventually(lambda: http.get("/api/conversations", headers=auth).json()["conversations"], 15)
        url = f"/api/conversations/{conversation['id']}/sla"

        def running_first_response() -> dict[str, Any] | None:
            targets = http.get(url, headers=auth).json()["targets"]
            return next((t for t in targets if t["target"] == "first_response"), None)

        started = eventually(running_first_response, 15)
        assert started["state"] == "running"
        assert 0 < started["seconds_left"] <= 60

        assert asyncio.run(make_overdue(database, conversation["id"])) == 1
        tagged = eventually(
            lambda: "sla-breached" in http.get(f"/api/conversations/{conversation['id']}", headers=auth).json()["tags"],
            BREACH_WAIT_SECONDS,
        )
        assert tagged

        listed = http.get(f"/api/sla-policies/{policy.json()['id']}/breaches", headers=auth).json()
        assert listed["total"] == 1
        [breach] = listed["breaches"]
        assert (breach["target"], breach["conversation_id"]) == ("first_response", conversation["id"])
        late = running_first_response()
        assert late is not None
        assert late["breached_at"] is not None
        assert late["seconds_left"] < 0
        runs = http.get("/api/automation-runs", headers=auth).json()["runs"]
        assert [(r["rule_id"], r["executed"]) for r in runs] == [(rule.json()["id"], True)]
