"""The automation event queue and the runs of rules, as supervisors see and handle them."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from uuid import UUID

import msgspec
import pytest
from arq import ArqRedis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from litestar.testing import AsyncTestClient

from omnistream.automation_events.webhooks import deliver_automation_webhooks
from omnistream.config import Settings
from omnistream.db import Database
from tests.automation_helpers import events_of, make_rule, process_all, runs_of
from tests.conftest import Tenant, create_agent, ingest, problem

RUNS, EVENTS = "/api/automation-runs", "/api/automation-events"


async def get(client: AsyncTestClient, who: Any, path: str, **params: Any) -> Any:
    response = await client.get(path, params=params, headers=who.headers if isinstance(who, Tenant) else who["headers"])
    assert response.status_code == 200, response.text
    return response.json()


async def a_few_runs(db: Database, arq: ArqRedis, tenant: Tenant) -> dict[str, Any]:
    """Two rules; three conversations; the refund rule matches one, the welcome rule all three."""
    welcome = await make_rule(
        db, tenant, "conversation_created", [{"type": "add_tags", "tags": ["new"]}], name="Welcome"
    )
    refund = await make_rule(
        db,
        tenant,
        "message_received_inbound",
        [{"type": "add_note", "text": "refund asked"}],
        name='Refunds, "urgent"\nsecond line',
        conditions={"message_contains_any": ["refund"]},
    )
    conversations = [
        (await ingest(db, tenant, text, external_id=f"62870{n}")).conversation_id
        for n, text in enumerate(["a refund please", "hello", "hi"])
    ]
    await process_all(db, arq)
    return {"welcome": welcome, "refund": refund, "conversations": conversations}


async def test_runs_are_listed_filtered_sorted_and_paged(
    client: AsyncTestClient, tenant: Tenant, db: Database, arq: ArqRedis
) -> None:
    world = await a_few_runs(db, arq, tenant)
    listed = await get(client, tenant, RUNS)
    assert listed["total"] == 4
    assert [r["rule_id"] for r in listed["runs"]].count(str(world["welcome"])) == 3
    newest_first = [r["created_at"] for r in listed["runs"]]
    assert newest_first == sorted(newest_first, reverse=True)
    by_rule = await get(client, tenant, f"{RUNS}/by-rule/{world['refund']}")
    assert [(r["rule_name"], r["matched"], r["executed"]) for r in by_rule["runs"]] == [
        ('Refunds, "urgent"\nsecond line', True, True)
    ]
    assert by_rule["runs"][0]["result"]["outcome"] == "executed"
    assert (await get(client, tenant, RUNS, rule_id=str(world["refund"])))["total"] == 1
    assert (await get(client, tenant, RUNS, executed="false"))["total"] == 0  # false is a filter too
    assert (await get(client, tenant, RUNS, executed="true"))["total"] == 4
    event_id = by_rule["runs"][0]["event_id"]
    assert [r["rule_id"] for r in (await get(client, tenant, f"{RUNS}/by-event/{event_id}"))["runs"]] == [
        str(world["refund"])
    ]

    # Keyset pages of one, ascending, see every run once.
    seen, cursor = [], None
    while True:
        page = await get(client, tenant, RUNS, per_page=1, sort_order="asc", **({"cursor": cursor} if cursor else {}))
        seen += [r["id"] for r in page["runs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 4
    # Another order pages by number; a cursor there is refused.
    by_rule_order = await get(client, tenant, RUNS, sort_by="rule_id", sort_order="asc", per_page=2, page=2)
    assert by_rule_order["next_cursor"] is None
    assert len(by_rule_order["runs"]) == 2
    response = await client.get(
        RUNS, params={"sort_by": "matched", "cursor": page_cursor(listed)}, headers=tenant.headers
    )
    assert problem(response, 422)["errors"][0]["field"] == "cursor"


def page_cursor(listed: dict[str, Any]) -> str:
    run = listed["runs"][0]
    return f"{run['created_at']}|{run['id']}"


async def test_a_run_in_detail_and_its_replay_context(
    client: AsyncTestClient, tenant: Tenant, db: Database, arq: ArqRedis
) -> None:
    await make_rule(
        db,
        tenant,
        "conversation_created",
        [{"type": "send_webhook", "url": "https://hooks.example.com/in", "secret": "s3cret"}],
        conditions={"channel_in": ["whatsapp"]},
    )
    created = await ingest(db, tenant, "hello")
    await process_all(db, arq)
    [run] = await runs_of(db, tenant)
    detail = await get(client, tenant, f"{RUNS}/{run['id']}")
    assert (detail["event_type"], detail["event_source"], detail["event_status"]) == (
        "conversation_created",
        "webhook",
        "done",
    )
    assert (detail["contact_id"], detail["channel_source"]) == (str(created.contact_id), "whatsapp")
    context = await get(client, tenant, f"{RUNS}/{run['id']}/replay-context")
    assert context["run"]["id"] == str(run["id"])
    assert context["event_payload"]["conversation_id"] == str(created.conversation_id)
    assert context["rule_conditions"] == {"channel_in": ["whatsapp"]}
    assert context["rule_actions"][0]["secret"] == "(hidden)"
    assert "s3cret" not in json.dumps(context)


async def test_events_are_listed_by_status_type_conversation_rule_and_fingerprint(
    client: AsyncTestClient, tenant: Tenant, db: Database, arq: ArqRedis
) -> None:
    world = await a_few_runs(db, arq, tenant)
    listed = await get(client, tenant, EVENTS)
    assert listed["total"] == 6
    assert {e["status"] for e in listed["events"]} == {"done"}
    assert (await get(client, tenant, EVENTS, event_type="conversation_created"))["total"] == 3
    assert (await get(client, tenant, EVENTS, status="failed"))["total"] == 0
    first = world["conversations"][0]
    by_conversation = await get(client, tenant, f"{EVENTS}/by-conversation/{first}")
    assert {e["event_type"] for e in by_conversation["events"]} == {"conversation_created", "message_received_inbound"}
    by_rule = await get(client, tenant, f"{EVENTS}/by-rule/{world['refund']}")
    assert [e["conversation_id"] for e in by_rule["events"]] == [str(first)]
    event = by_rule["events"][0]
    fingerprinted = await get(client, tenant, f"{EVENTS}/by-fingerprint/{event['payload_hash']}")
    assert [e["id"] for e in fingerprinted] == [event["id"]]
    assert (await get(client, tenant, f"{EVENTS}/{event['id']}"))["payload"]["message"]["text"] == "a refund please"
    sorted_by_type = await get(client, tenant, EVENTS, sort_by="event_type", sort_order="asc")
    types = [e["event_type"] for e in sorted_by_type["events"]]
    assert types == sorted(types)
    stats = await get(client, tenant, f"{EVENTS}/stats", window_days=1)
    assert stats == {
        "total_events": 6,
        "pending_events": 0,
        "processing_events": 0,
        "done_events": 6,
        "failed_events": 0,
    }
    metrics = await get(client, tenant, "/api/automation-worker/metrics")
    assert {m["event_type"]: (m["claimed_events"], m["done_events"], m["failed_events"]) for m in metrics} == {
        "conversation_created": (3, 3, 0),
        "message_received_inbound": (3, 3, 0),
    }


async def test_failed_events_are_retried_cleaned_up_and_reprocessed(
    client: AsyncTestClient, tenant: Tenant, db: Database, arq: ArqRedis
) -> None:
    created = await ingest(db, tenant, "hello")
    await process_all(db, arq)  # no rules: done, no runs
    async with db.tenant(UUID(tenant.id)) as conn:
        await conn.execute(
            "UPDATE automation_events SET status = 'failed', error = 'boom', created_at = now() - interval '40 days'"
            " WHERE event_type = 'message_received_inbound'"
        )
    [failed] = [e for e in await events_of(db, tenant) if e["status"] == "failed"]

    # Reprocess with a rule made since: the rule runs now, once however often it is asked.
    await make_rule(db, tenant, "message_received_inbound", [{"type": "add_tags", "tags": ["late"]}])
    for _ in range(2):
        response = await client.post(f"{EVENTS}/{failed['id']}/reprocess", headers=tenant.headers)
        assert response.status_code == 200, response.text
        assert [r["matched"] for r in response.json()["runs"]] == [True]
    conversation = await get(client, tenant, f"/api/conversations/{created.conversation_id}")
    assert conversation["tags"] == ["late"]
    assert (await get(client, tenant, f"{EVENTS}/{failed['id']}"))["status"] == "done"

    async with db.tenant(UUID(tenant.id)) as conn:
        await conn.execute("UPDATE automation_events SET status = 'failed' WHERE id = $1", failed["id"])
    response = await client.post(f"{EVENTS}/retry-failed", json={"limit": 10}, headers=tenant.headers)
    assert response.json() == {"message": "1 failed events queued for retry", "retried_count": 1}
    event = await get(client, tenant, f"{EVENTS}/{failed['id']}")
    assert (event["status"], event["attempts"], event["error"]) == ("pending", 0, None)
    await process_all(db, arq)
    assert len(await runs_of(db, tenant)) == 1  # the rule already ran for it: not again

    async with db.tenant(UUID(tenant.id)) as conn:
        await conn.execute("UPDATE automation_events SET status = 'failed' WHERE id = $1", failed["id"])
    response = await client.post(f"{EVENTS}/cleanup", json={"older_than_days": 60}, headers=tenant.headers)
    assert response.json()["deleted_count"] == 0
    response = await client.post(f"{EVENTS}/cleanup", json={"older_than_days": 30}, headers=tenant.headers)
    assert response.json() == {"message": "1 failed events deleted", "deleted_count": 1}
    assert await runs_of(db, tenant) == []  # its runs went with it
    problem(await client.post(f"{EVENTS}/{failed['id']}/retry", headers=tenant.headers), 404)


async def test_an_event_being_processed_is_not_retried_or_reprocessed(
    client: AsyncTestClient, tenant: Tenant, db: Database
) -> None:
    await ingest(db, tenant, "hello")
    [event, _] = await events_of(db, tenant)
    async with db.tenant(UUID(tenant.id)) as conn:
        await conn.execute("UPDATE automation_events SET status = 'processing' WHERE id = $1", event["id"])
    problem(await client.post(f"{EVENTS}/{event['id']}/retry", headers=tenant.headers), 409)
    problem(await client.post(f"{EVENTS}/{event['id']}/reprocess", headers=tenant.headers), 409)


async def test_exports_are_csv_that_parses_back(
    client: AsyncTestClient, tenant: Tenant, db: Database, arq: ArqRedis
) -> None:
    await a_few_runs(db, arq, tenant)
    response = await client.get(f"{RUNS}/export", headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 4
    names = {row["rule_name"] for row in rows}
    assert names == {"Welcome", 'Refunds, "urgent"\nsecond line'}
    assert {row["outcome"] for row in rows} == {"executed"}
    assert all(json.loads(row["result"])["outcome"] == "executed" for row in rows)
    limited = list(
        csv.DictReader(io.StringIO((await client.get(f"{RUNS}/export?limit=2", headers=tenant.headers)).text))
    )
    assert len(limited) == 2
    events = list(csv.DictReader(io.StringIO((await client.get(f"{EVENTS}/export", headers=tenant.headers)).text)))
    assert len(events) == 6
    assert {row["status"] for row in events} == {"done"}
    inbound = [row for row in events if row["event_type"] == "message_received_inbound"]
    assert {json.loads(row["payload"])["message"]["text"] for row in inbound} == {"a refund please", "hello", "hi"}


@hypothesis_settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(name=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=40))
def test_a_cell_of_any_text_survives_the_csv_round_trip(name: str) -> None:
    """Commas, quotes, newlines, emoji; and a text a spreadsheet would run as a formula is defused."""
    from omnistream.automation_events.service import _cell

    buffer = io.StringIO()
    csv.writer(buffer).writerow([_cell(name)])
    [[back]] = list(csv.reader(io.StringIO(buffer.getvalue())))
    if name.startswith(("=", "+", "-", "@", "\t", "\r")):
        assert back == "'" + name
    else:
        assert back == name


async def test_a_large_export_is_streamed_in_batches(
    client: AsyncTestClient, tenant: Tenant, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from omnistream.automation_events import service

    monkeypatch.setattr(service, "EXPORT_BATCH", 3)
    for n in range(8):
        await ingest(db, tenant, f"message {n}", external_id=f"6287{n:02d}")
    body = (await client.get(f"{EVENTS}/export?sort_order=asc", headers=tenant.headers)).text
    rows = list(csv.DictReader(io.StringIO(body)))
    assert len(rows) == 16
    assert len({row["id"] for row in rows}) == 16
    assert [row["created_at"] for row in rows] == sorted(row["created_at"] for row in rows)


async def test_bad_input_is_refused(client: AsyncTestClient, tenant: Tenant) -> None:
    for path, params in (
        (RUNS, {"sort_by": "name"}),
        (RUNS, {"matched": "maybe"}),
        (EVENTS, {"status": "lost"}),
        (EVENTS, {"payload_hash": "abc"}),
        (EVENTS, {"source": "Not A Source"}),
        (f"{EVENTS}/stats", {"window_days": 0}),
        (f"{RUNS}/export", {"limit": 0}),
        (f"{EVENTS}/export", {"created_from": "yesterday"}),
    ):
        problem(await client.get(path, params=params, headers=tenant.headers), 400)
    problem(await client.get(f"{EVENTS}/by-fingerprint/{'z' * 64}", headers=tenant.headers), 400)
    problem(await client.post(f"{EVENTS}/cleanup", json={"older_than_days": 0}, headers=tenant.headers), 400)
    problem(await client.post(f"{EVENTS}/retry-failed", json={"limit": "all"}, headers=tenant.headers), 400)
    backwards = {"created_from": "2030-01-02T00:00:00Z", "created_to": "2030-01-01T00:00:00Z"}
    problem(await client.get(f"{RUNS}/export", params=backwards, headers=tenant.headers), 422)


async def test_agents_may_not_and_another_tenant_sees_nothing(
    client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant, db: Database, arq: ArqRedis
) -> None:
    world = await a_few_runs(db, arq, tenant)
    [run] = await runs_of(db, tenant, rule_id=world["refund"])
    agent = await create_agent(client, tenant)
    supervisor = await create_agent(client, tenant, role="supervisor")
    assert (await client.get(RUNS, headers=agent["headers"])).status_code == 403
    assert (await client.get(RUNS, headers=supervisor["headers"])).status_code == 200
    for path in (
        f"{RUNS}/{run['id']}",
        f"{RUNS}/{run['id']}/replay-context",
        f"{EVENTS}/{run['event_id']}",
    ):
        problem(await client.get(path, headers=other_tenant.headers), 404)
    problem(await client.post(f"{EVENTS}/{run['event_id']}/retry", headers=other_tenant.headers), 404)
    problem(await client.post(f"{EVENTS}/{run['event_id']}/reprocess", headers=other_tenant.headers), 404)
    assert (await get(client, other_tenant, f"{RUNS}/by-rule/{world['refund']}"))["total"] == 0
    assert (await get(client, other_tenant, EVENTS))["total"] == 0
    assert await get(client, other_tenant, f"{EVENTS}/by-fingerprint/{'0' * 64}") == []
    assert await get(client, other_tenant, "/api/automation-worker/metrics") == []


# ------------------------------------------------------------------ webhooks


class Receiver:
    """A webhook receiver on loopback that records what it is sent and answers with `status`."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()


async def test_a_webhook_is_posted_signed_after_the_run_and_its_answer_recorded(
    client: AsyncTestClient, tenant: Tenant, db: Database, arq: ArqRedis, settings: Settings, receiver: Receiver
) -> None:
    await make_rule(
        db,
        tenant,
        "conversation_created",
        [{"type": "send_webhook", "url": receiver.url, "secret": "shh", "headers": {"X-Team": "blue"}}],
    )
    created = await ingest(db, tenant, "hello")
    await process_all(db, arq)
    [run] = await runs_of(db, tenant)
    assert run["webhooks_pending"] is True
    assert receiver.received == []  # posted by its own job, after the commit

    allowed = msgspec.structs.replace(settings, webhooks_allow_private=True)
    ctx = {"db": db, "settings": allowed, "job_try": 1}
    assert await deliver_automation_webhooks(ctx, tenant.id, str(run["id"])) == "finished"
    [(headers, body)] = receiver.received
    assert headers["x-omnistream-signature"] == "sha256=" + hmac.new(b"shh", body, hashlib.sha256).hexdigest()
    assert headers["x-omnistream-delivery"] == f"{run['id']}:0"
    assert headers["x-team"] == "blue"
    sent = json.loads(body)
    assert sent["event"]["event_type"] == "conversation_created"
    assert sent["event"]["conversation_id"] == str(created.conversation_id)
    [after] = await runs_of(db, tenant)
    assert after["webhooks_pending"] is False
    detail = after["result"]["actions"][0]["detail"]
    assert (detail["delivery"], detail["status_code"]) == ("delivered", 200)
    # Done is done: the job run again posts nothing.
    assert await deliver_automation_webhooks(ctx, tenant.id, str(run["id"])) == "nothing pending"
    assert len(receiver.received) == 1


async def test_a_webhook_to_a_private_address_is_refused_unless_allowed(
    tenant: Tenant, db: Database, arq: ArqRedis, settings: Settings, receiver: Receiver
) -> None:
    await make_rule(db, tenant, "conversation_created", [{"type": "send_webhook", "url": receiver.url}])
    await ingest(db, tenant, "hello")
    await process_all(db, arq)
    [run] = await runs_of(db, tenant)
    ctx = {"db": db, "settings": settings, "job_try": 1}
    assert await deliver_automation_webhooks(ctx, tenant.id, str(run["id"])) == "finished"
    assert receiver.received == []
    [after] = await runs_of(db, tenant)
    detail = after["result"]["actions"][0]["detail"]
    assert detail["delivery"] == "failed"
    assert "not public" in detail["error"]


async def test_a_receiver_that_is_down_is_tried_again(
    tenant: Tenant, db: Database, arq: ArqRedis, settings: Settings, receiver: Receiver
) -> None:
    from arq import Retry

    await make_rule(db, tenant, "conversation_created", [{"type": "send_webhook", "url": receiver.url}])
    await ingest(db, tenant, "hello")
    await process_all(db, arq)
    [run] = await runs_of(db, tenant)
    receiver.status = 503
    ctx = {"db": db, "settings": msgspec.structs.replace(settings, webhooks_allow_private=True), "job_try": 1}
    with pytest.raises(Retry):
        await deliver_automation_webhooks(ctx, tenant.id, str(run["id"]))
    assert (await runs_of(db, tenant))[0]["webhooks_pending"] is True
    receiver.status = 404  # a 4xx is final
    assert await deliver_automation_webhooks(ctx | {"job_try": 2}, tenant.id, str(run["id"])) == "finished"
    [after] = await runs_of(db, tenant)
    assert (after["webhooks_pending"], after["result"]["actions"][0]["detail"]["delivery"]) == (False, "failed")
    assert len(receiver.received) == 2
