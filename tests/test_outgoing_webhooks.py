"""Outgoing webhooks: the endpoints API, the fan-out from the outbox, signed delivery to a real
receiver on loopback, retries by the clock, disabling, the log and test sends."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from uuid import UUID

import httpx
import msgspec
import pytest
from arq import ArqRedis
from litestar.testing import AsyncTestClient

from omnistream.app import create_app
from omnistream.automation.service import Outbox
from omnistream.automation_events.processing import Claim
from omnistream.config import Settings
from omnistream.db import Database
from omnistream.outgoing_webhooks import service, tasks
from omnistream.outgoing_webhooks.delivery import (
    BACKOFF,
    FAILING_REASON,
    GONE_REASON,
    MAX_ATTEMPTS,
    MAX_RESPONSE_BYTES,
    deliver_due,
    verify,
)
from omnistream.outgoing_webhooks.schemas import HIDDEN, MAX_HEADERS
from omnistream.security.principal import Actor
from tests.automation_helpers import process_all
from tests.conftest import Tenant, create_agent, headers_of, ingest, problem

BASE = "/api/outgoing-webhooks"
NOWHERE = "00000000-0000-4000-8000-000000000000"
PUBLIC_ADDRESS_URL = "https://93.184.216.34/hooks"


class Receiver:
    """A webhook receiver on loopback: checks each request's signature as a receiver would, and
    answers with `status` and `answer`."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.status = 200
        self.answer = b"ok"
        self.secret = ""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                verified = verify(receiver.secret, body, headers.get("x-omnistream-signature", ""), now=time.time())
                receiver.received.append({"headers": headers, "body": json.loads(body), "verified": verified})
                self.send_response(receiver.status)
                self.send_header("content-length", str(len(receiver.answer)))
                self.end_headers()
                self.wfile.write(receiver.answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()


@pytest.fixture
def allowed(settings: Settings) -> Settings:
    """The settings with private targets allowed, so that the loopback receiver can be reached."""
    return msgspec.structs.replace(settings, webhooks_allow_private=True)


@pytest.fixture
async def open_client(allowed: Settings) -> AsyncIterator[AsyncTestClient]:
    """The API of an installation that allows private targets (tests, on-premise receivers)."""
    async with AsyncTestClient(app=create_app(allowed)) as test_client:
        yield test_client


async def new_webhook(
    client: AsyncTestClient, who: Tenant | dict[str, Any], receiver: Receiver | None = None, **fields: Any
) -> dict[str, Any]:
    body = {"url": receiver.url if receiver else PUBLIC_ADDRESS_URL, "event_types": ["message.received"]} | fields
    response = await client.post(BASE, json=body, headers=headers_of(who))
    assert response.status_code == 201, response.text
    made = response.json()
    if receiver is not None:
        receiver.secret = made["secret"]
    return made


async def deliveries(client: AsyncTestClient, tenant: Tenant, webhook_id: str, **params: Any) -> dict[str, Any]:
    response = await client.get(f"{BASE}/{webhook_id}/deliveries", params=params, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def webhook(client: AsyncTestClient, tenant: Tenant, webhook_id: str) -> dict[str, Any]:
    listed = (await client.get(BASE, params={"per_page": 100}, headers=tenant.headers)).json()
    return next(w for w in listed["outgoing_webhooks"] if w["id"] == webhook_id)


async def stored_deliveries(db: Database, tenant: Tenant) -> list[dict[str, Any]]:
    async with db.tenant(UUID(tenant.id)) as conn:
        rows = await conn.fetch(
            "SELECT * FROM outgoing_webhook_deliveries WHERE tenant_id = $1 ORDER BY created_at", UUID(tenant.id)
        )
    return [dict(r) for r in rows]


async def deliver(db: Database, allowed: Settings, now: datetime, *, allow_private: bool = True) -> int:
    async with httpx.AsyncClient() as http:
        return await deliver_due(db, allowed.secrets, http, now, allow_private=allow_private)


def soon() -> datetime:
    return datetime.now(UTC) + timedelta(seconds=1)


# ---------------------------------------------------------------- the endpoints API


async def test_the_secret_is_shown_once_and_header_values_are_hidden(
    open_client: AsyncTestClient, tenant: Tenant, receiver: Receiver
) -> None:
    made = await new_webhook(
        open_client, tenant, receiver, headers={"Authorization": "Bearer abc"}, description="CRM sync"
    )
    assert made["secret"].startswith("whsec_")
    assert len(made["secret"]) > 30
    assert made["secret_hint"] == f"whsec_…{made['secret'][-4:]}"
    assert made["headers"] == {"Authorization": HIDDEN}
    assert (made["enabled"], made["disabled_reason"], made["consecutive_failures"]) == (True, None, 0)
    assert made["created_by"] == tenant.admin_id
    listed = (await open_client.get(BASE, headers=tenant.headers)).json()
    assert listed["total"] == 1
    [shown] = listed["outgoing_webhooks"]
    assert "secret" not in shown
    assert made["secret"] not in json.dumps(listed)
    assert "Bearer abc" not in json.dumps(listed)
    given = await new_webhook(open_client, tenant, receiver, secret="s" * 16 + "-mine")
    assert given["secret"] == "s" * 16 + "-mine"
    assert given["secret_hint"] == "…mine"
    log = await open_client.get("/api/activity-logs", params={"per_page": 100}, headers=tenant.headers)
    assert "outgoing_webhook.created" in {e["action"] for e in log.json()["activity_logs"]}


async def test_the_list_filters_and_pages(open_client: AsyncTestClient, tenant: Tenant, receiver: Receiver) -> None:
    first = await new_webhook(open_client, tenant, receiver, event_types=["message.sent"])
    second = await new_webhook(open_client, tenant, receiver, enabled=False)
    assert second["disabled_reason"] == "disabled by an admin"
    assert second["disabled_at"]
    page = (await open_client.get(BASE, params={"per_page": 1}, headers=tenant.headers)).json()
    assert [w["id"] for w in page["outgoing_webhooks"]] == [second["id"]]
    rest = (
        await open_client.get(BASE, params={"per_page": 1, "cursor": page["next_cursor"]}, headers=tenant.headers)
    ).json()
    assert [w["id"] for w in rest["outgoing_webhooks"]] == [first["id"]]
    assert rest["next_cursor"] is None
    enabled = (await open_client.get(BASE, params={"enabled": "true"}, headers=tenant.headers)).json()
    assert [w["id"] for w in enabled["outgoing_webhooks"]] == [first["id"]]
    sent = (await open_client.get(BASE, params={"event_type": "message.sent"}, headers=tenant.headers)).json()
    assert [w["id"] for w in sent["outgoing_webhooks"]] == [first["id"]]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"url": "ftp://example.com/x"}, 400, "url"),
        ({"url": "https://"}, 400, "url"),
        ({"url": "https://host:99999/x"}, 422, "url"),
        ({"url": "https://user:pw@93.184.216.34/x"}, 422, "url"),
        ({"event_types": []}, 400, "event_types"),
        ({"event_types": ["message.received", "order.paid"]}, 422, "event_types"),
        ({"event_types": "message.received"}, 400, "event_types"),
        ({"secret": "short"}, 400, "secret"),
        ({"headers": {"Content-Type": "text/plain"}}, 422, "headers.Content-Type"),
        ({"headers": {"x-omnistream-signature": "forged"}}, 422, "headers.x-omnistream-signature"),
        ({"headers": {"X-Team": "a", "x-team": "b"}}, 422, "headers.x-team"),
        ({"headers": {"X-Team": "line\r\nInjected: 1"}}, 400, "headers"),
        ({"headers": {"bad name": "x"}}, 400, "headers"),
        ({"headers": {f"X-H{i}": "v" for i in range(MAX_HEADERS + 1)}}, 400, "headers"),
        ({"description": "x" * 501}, 400, "description"),
        ({"colour": "blue"}, 400, "colour"),
    ],
)
async def test_bad_input_is_refused_and_stores_nothing(
    client: AsyncTestClient, tenant: Tenant, body: dict[str, Any], status: int, field: str
) -> None:
    full = {"url": PUBLIC_ADDRESS_URL, "event_types": ["message.received"]} | body
    found = problem(await client.post(BASE, json=full, headers=tenant.headers), status)
    assert field in json.dumps(found)
    assert (await client.get(BASE, headers=tenant.headers)).json()["total"] == 0


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hooks",
        "https://localhost/hooks",
        "https://10.1.2.3/hooks",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hooks",
        "https://no-such-host.invalid/hooks",
    ],
)
async def test_private_and_unresolvable_targets_are_refused(client: AsyncTestClient, tenant: Tenant, url: str) -> None:
    found = problem(
        await client.post(BASE, json={"url": url, "event_types": ["message.sent"]}, headers=tenant.headers), 422
    )
    assert found["errors"][0]["field"] == "url"
    made = await new_webhook(client, tenant)
    problem(await client.patch(f"{BASE}/{made['id']}", json={"url": url}, headers=tenant.headers), 422)
    assert (await webhook(client, tenant, made["id"]))["url"] == PUBLIC_ADDRESS_URL


async def test_plain_http_only_where_private_targets_are_allowed(
    client: AsyncTestClient, open_client: AsyncTestClient, tenant: Tenant, receiver: Receiver
) -> None:
    problem(
        await client.post(
            BASE, json={"url": "http://93.184.216.34/x", "event_types": ["message.sent"]}, headers=tenant.headers
        ),
        422,
    )
    await new_webhook(open_client, tenant, receiver)


async def test_only_admins_with_the_permission_manage_webhooks(
    client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    made = await new_webhook(client, tenant)
    path = f"{BASE}/{made['id']}"
    for role in ("agent", "supervisor"):
        who = await create_agent(client, tenant, role=role)
        calls = [
            client.get(BASE, headers=who["headers"]),
            client.post(
                BASE, json={"url": PUBLIC_ADDRESS_URL, "event_types": ["message.sent"]}, headers=who["headers"]
            ),
            client.get(f"{BASE}/event-types", headers=who["headers"]),
            client.patch(path, json={"enabled": False}, headers=who["headers"]),
            client.delete(path, headers=who["headers"]),
            client.get(f"{path}/deliveries", headers=who["headers"]),
            client.post(f"{path}/test", headers=who["headers"]),
        ]
        for call in calls:
            problem(await call, 403)
    # Another organisation's webhook does not exist for them.
    for call in (
        client.patch(path, json={"enabled": False}, headers=other_tenant.headers),
        client.delete(path, headers=other_tenant.headers),
        client.get(f"{path}/deliveries", headers=other_tenant.headers),
        client.post(f"{path}/test", headers=other_tenant.headers),
    ):
        problem(await call, 404)
    assert (await client.get(BASE, headers=other_tenant.headers)).json()["total"] == 0
    assert (await webhook(client, tenant, made["id"]))["enabled"] is True


async def test_update_and_delete(open_client: AsyncTestClient, tenant: Tenant, receiver: Receiver) -> None:
    made = await new_webhook(open_client, tenant, receiver, headers={"X-Team": "blue"}, description="first")
    path = f"{BASE}/{made['id']}"
    patched = await open_client.patch(
        path,
        json={"event_types": ["message.sent", "message.sent", "csat.submitted"], "description": None},
        headers=tenant.headers,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["event_types"] == ["message.sent", "csat.submitted"]
    assert patched.json()["description"] is None
    assert patched.json()["secret_hint"] == made["secret_hint"]
    assert "secret" not in patched.json()

    problem(await open_client.patch(path, json={"headers": {"X-Other": HIDDEN}}, headers=tenant.headers), 422)
    problem(await open_client.patch(path, json={"event_types": ["nope"]}, headers=tenant.headers), 422)
    problem(await open_client.patch(path, json={"enabled": "yes"}, headers=tenant.headers), 400)
    problem(await open_client.patch(f"{BASE}/{NOWHERE}", json={"enabled": False}, headers=tenant.headers), 404)
    kept = await open_client.patch(path, json={"headers": {"X-Team": HIDDEN, "X-Env": "prod"}}, headers=tenant.headers)
    assert kept.json()["headers"] == {"X-Team": HIDDEN, "X-Env": HIDDEN}
    # A new secret signs from the next send on; the saved header value was kept.
    receiver.secret = "a-brand-new-secret-value"
    await open_client.patch(path, json={"secret": receiver.secret}, headers=tenant.headers)
    tested = await open_client.post(f"{path}/test", json={"event_type": "csat.submitted"}, headers=tenant.headers)
    assert tested.json()["succeeded"] is True, tested.text
    [got] = receiver.received
    assert got["verified"] is True
    assert (got["headers"]["x-team"], got["headers"]["x-env"]) == ("blue", "prod")

    disabled = (await open_client.patch(path, json={"enabled": False}, headers=tenant.headers)).json()
    assert (disabled["enabled"], disabled["disabled_reason"]) == (False, "disabled by an admin")
    enabled = (await open_client.patch(path, json={"enabled": True}, headers=tenant.headers)).json()
    assert (enabled["enabled"], enabled["disabled_reason"], enabled["disabled_at"]) == (True, None, None)

    deleted = await open_client.delete(path, headers=tenant.headers)
    assert deleted.status_code == 200
    assert deleted.json() == {"message": "outgoing webhook deleted", "id": made["id"]}
    problem(await open_client.delete(path, headers=tenant.headers), 404)
    assert (await open_client.get(BASE, headers=tenant.headers)).json()["total"] == 0


async def test_the_event_type_catalog(client: AsyncTestClient, tenant: Tenant) -> None:
    response = await client.get(f"{BASE}/event-types", headers=tenant.headers)
    assert response.status_code == 200
    catalog = response.json()
    names = [t["name"] for t in catalog["event_types"]]
    assert set(names) == {
        "message.received",
        "message.sent",
        "conversation.created",
        "conversation.status_changed",
        "conversation.assigned",
        "csat.submitted",
        "sla.breached",
    }
    for event_type in catalog["event_types"]:
        assert event_type["description"]
        assert event_type["example"]["conversation_id"]
    assert set(catalog["envelope"]) == {"id", "type", "created_at", "tenant_id", "test", "data"}


# ---------------------------------------------------------------- fan-out


async def test_committed_events_fan_out_once_to_subscribed_enabled_endpoints(
    open_client: AsyncTestClient, tenant: Tenant, db: Database, arq: ArqRedis, receiver: Receiver
) -> None:
    received = await new_webhook(open_client, tenant, receiver, event_types=["message.received"])
    created = await new_webhook(open_client, tenant, receiver, event_types=["conversation.created"])
    await new_webhook(open_client, tenant, receiver, event_types=["message.sent"])
    await new_webhook(open_client, tenant, receiver, event_types=["message.received"], enabled=False)
    await ingest(db, tenant, "hello")
    assert await stored_deliveries(db, tenant) == []  # nothing before the outbox's events are processed
    await process_all(db, arq)
    rows = await stored_deliveries(db, tenant)
    assert sorted((str(r["webhook_id"]), r["event_type"]) for r in rows) == sorted(
        [(received["id"], "message.received"), (created["id"], "conversation.created")]
    )
    body = json.loads(next(r for r in rows if r["event_type"] == "message.received")["body"])
    assert body["data"]["message"]["text"] == "hello"
    assert body["tenant_id"] == tenant.id
    assert body["test"] is False

    # An event processed again (at-least-once) adds no delivery.
    async with db.tenant(UUID(tenant.id)) as conn:
        events = await conn.fetch("SELECT * FROM automation_events WHERE tenant_id = $1", UUID(tenant.id))
        claims = [
            Claim(**{k: e[k] for k in Claim.__dataclass_fields__ if k != "rules_version"}, rules_version=1)
            for e in events
        ]
        await service.fan_out(conn, UUID(tenant.id), claims)
    assert len(await stored_deliveries(db, tenant)) == 2


async def test_a_rolled_back_change_reaches_no_webhook(
    open_client: AsyncTestClient, tenant: Tenant, db: Database, arq: ArqRedis, receiver: Receiver
) -> None:
    await new_webhook(open_client, tenant, receiver, event_types=["conversation.assigned"])
    conversation = (await ingest(db, tenant, "hello")).conversation_id
    await process_all(db, arq)

    class Abandoned(Exception):
        pass

    async def assign_then_fail() -> None:
        async with db.tenant(UUID(tenant.id)) as conn:
            outbox = Outbox(UUID(tenant.id), source="api")
            outbox.add("conversation_assigned", conversation, None, {"conversation_id": conversation})
            await outbox.write(conn)
            raise Abandoned

    with pytest.raises(Abandoned):
        await assign_then_fail()
    await process_all(db, arq)
    assert await stored_deliveries(db, tenant) == []

    async with db.tenant(UUID(tenant.id)) as conn:
        outbox = Outbox(UUID(tenant.id), source="api")
        outbox.add("conversation_assigned", conversation, None, {"conversation_id": conversation})
        await outbox.write(conn)
    await process_all(db, arq)
    assert [r["event_type"] for r in await stored_deliveries(db, tenant)] == ["conversation.assigned"]


# ---------------------------------------------------------------- delivery


async def test_a_delivery_is_signed_verified_and_logged(
    open_client: AsyncTestClient,
    tenant: Tenant,
    db: Database,
    arq: ArqRedis,
    allowed: Settings,
    receiver: Receiver,
) -> None:
    made = await new_webhook(open_client, tenant, receiver, headers={"X-Team": "blue"})
    await ingest(db, tenant, "where is my order?")
    await process_all(db, arq)
    assert await deliver(db, allowed, soon()) == 1
    [got] = receiver.received
    assert got["verified"] is True
    assert got["headers"]["x-omnistream-event"] == "message.received"
    assert got["headers"]["x-team"] == "blue"
    assert got["headers"]["content-type"] == "application/json"
    assert got["body"]["type"] == "message.received"
    assert got["body"]["data"]["message"]["text"] == "where is my order?"
    [row] = await stored_deliveries(db, tenant)
    assert got["headers"]["x-omnistream-delivery"] == str(row["id"])
    assert (row["status"], row["attempts"]) == ("delivered", 1)
    assert await deliver(db, allowed, soon() + timedelta(days=2)) == 0  # delivered is done

    [entry] = (await deliveries(open_client, tenant, made["id"]))["deliveries"]
    assert (entry["attempt"], entry["succeeded"], entry["status_code"], entry["error"]) == (1, True, 200, None)
    assert entry["delivery_id"] == str(row["id"])
    assert entry["is_test"] is False
    assert entry["event_type"] == "message.received"
    assert entry["response_body"] == "ok"
    assert entry["request_headers"]["X-Team"] == HIDDEN
    assert entry["request_headers"]["X-OmniStream-Signature"].startswith("t=")
    assert json.loads(entry["request_body"]) == got["body"]
    assert entry["duration_ms"] >= 0
    assert entry["next_attempt_at"] is None
    assert (await webhook(open_client, tenant, made["id"]))["last_success_at"] is not None


def test_verify_refuses_forgeries_and_replays() -> None:
    from omnistream.outgoing_webhooks.delivery import sign

    body, now = b'{"id":"1"}', 1_750_000_000
    header = sign("the-secret-0123456789", body, now)
    assert verify("the-secret-0123456789", body, header, now=now + 10)
    assert not verify("another-secret-01234567", body, header, now=now)
    assert not verify("the-secret-0123456789", body + b" ", header, now=now)
    assert not verify("the-secret-0123456789", body, header, now=now + 301)  # a replay, five minutes on
    assert not verify("the-secret-0123456789", body, "v1=" + header.rpartition("v1=")[2], now=now)
    # During a rotation a signature made with either secret verifies.
    both = header + "," + sign("the-old-secret-9876543210", body, now).partition(",")[2]
    assert verify("the-old-secret-9876543210", body, both, now=now)


async def test_failures_are_retried_with_backoff_by_the_clock(
    open_client: AsyncTestClient,
    tenant: Tenant,
    db: Database,
    arq: ArqRedis,
    allowed: Settings,
    receiver: Receiver,
) -> None:
    made = await new_webhook(open_client, tenant, receiver)
    await ingest(db, tenant, "hello")
    await process_all(db, arq)
    receiver.status = 503
    now = soon()
    for attempt, wait in enumerate(BACKOFF, start=1):
        assert await deliver(db, allowed, now) == 1, attempt
        assert await deliver(db, allowed, now + wait - timedelta(seconds=1)) == 0  # not due yet
        [row] = await stored_deliveries(db, tenant)
        assert (row["status"], row["attempts"], row["next_attempt_at"]) == ("pending", attempt, now + wait)
        now += wait
    assert await deliver(db, allowed, now) == 1
    [row] = await stored_deliveries(db, tenant)
    assert (row["status"], row["attempts"]) == ("failed", MAX_ATTEMPTS)
    assert await deliver(db, allowed, now + timedelta(days=3)) == 0
    assert len(receiver.received) == MAX_ATTEMPTS
    assert len({r["headers"]["x-omnistream-delivery"] for r in receiver.received}) == 1
    assert len({json.dumps(r["body"]) for r in receiver.received}) == 1

    log = await deliveries(open_client, tenant, made["id"], per_page=100)
    assert [e["attempt"] for e in log["deliveries"]] == list(range(MAX_ATTEMPTS, 0, -1))
    assert all(e["status_code"] == 503 and not e["succeeded"] for e in log["deliveries"])
    assert log["deliveries"][0]["next_attempt_at"] is None
    assert log["deliveries"][-1]["next_attempt_at"] is not None
    shown = await webhook(open_client, tenant, made["id"])
    # Under a day of failing (the schedule spans 23 h 36 min) leaves the endpoint enabled.
    assert (shown["enabled"], shown["consecutive_failures"]) == (True, MAX_ATTEMPTS)
    assert shown["failing_since"] is not None


async def test_a_retry_that_succeeds_clears_the_failure_record(
    open_client: AsyncTestClient,
    tenant: Tenant,
    db: Database,
    arq: ArqRedis,
    allowed: Settings,
    receiver: Receiver,
) -> None:
    made = await new_webhook(open_client, tenant, receiver)
    await ingest(db, tenant, "hello")
    await process_all(db, arq)
    receiver.status = 500
    now = soon()
    await deliver(db, allowed, now)
    assert (await webhook(open_client, tenant, made["id"]))["consecutive_failures"] == 1
    receiver.status = 204
    assert await deliver(db, allowed, now + BACKOFF[0]) == 1
    [row] = await stored_deliveries(db, tenant)
    assert (row["status"], row["attempts"]) == ("delivered", 2)
    shown = await webhook(open_client, tenant, made["id"])
    assert (shown["consecutive_failures"], shown["failing_since"]) == (0, None)


async def test_a_gone_receiver_disables_the_endpoint_at_once(
    open_client: AsyncTestClient,
    tenant: Tenant,
    db: Database,
    arq: ArqRedis,
    allowed: Settings,
    receiver: Receiver,
) -> None:
    made = await new_webhook(open_client, tenant, receiver)
    await ingest(db, tenant, "hello")
    await process_all(db, arq)
    receiver.status = 410
    await deliver(db, allowed, soon())
    shown = await webhook(open_client, tenant, made["id"])
    assert (shown["enabled"], shown["disabled_reason"]) == (False, GONE_REASON)
    assert shown["disabled_at"] is not None
    [row] = await stored_deliveries(db, tenant)
    assert row["status"] == "failed"
    # A disabled endpoint gets no new deliveries, until it is enabled again.
    await ingest(db, tenant, "again")
    await process_all(db, arq)
    assert len(await stored_deliveries(db, tenant)) == 1
    enabled = (await open_client.patch(f"{BASE}/{made['id']}", json={"enabled": True}, headers=tenant.headers)).json()
    assert (enabled["enabled"], enabled["disabled_reason"], enabled["consecutive_failures"]) == (True, None, 0)
    await ingest(db, tenant, "and again")
    await process_all(db, arq)
    assert len(await stored_deliveries(db, tenant)) == 2


async def test_an_endpoint_failing_for_a_day_is_disabled(
    open_client: AsyncTestClient,
    tenant: Tenant,
    db: Database,
    arq: ArqRedis,
    allowed: Settings,
    receiver: Receiver,
) -> None:
    made = await new_webhook(open_client, tenant, receiver)
    receiver.status = 500
    await ingest(db, tenant, "first")
    await process_all(db, arq)
    start = soon()
    await deliver(db, allowed, start)
    await ingest(db, tenant, "second")
    await process_all(db, arq)
    # The second event's first attempt and the first's retry, still within the day.
    assert await deliver(db, allowed, start + timedelta(hours=23)) == 2
    assert (await webhook(open_client, tenant, made["id"]))["enabled"] is True
    # Both are due again; the first failure past the day disables the endpoint.
    assert await deliver(db, allowed, start + timedelta(hours=24, minutes=1)) == 2
    shown = await webhook(open_client, tenant, made["id"])
    assert (shown["enabled"], shown["disabled_reason"]) == (False, FAILING_REASON)
    # Its remaining deliveries wait and are not claimed while it is disabled.
    assert await deliver(db, allowed, start + timedelta(days=3)) == 0


async def test_a_target_is_checked_again_at_delivery(
    open_client: AsyncTestClient,
    tenant: Tenant,
    db: Database,
    arq: ArqRedis,
    allowed: Settings,
    receiver: Receiver,
) -> None:
    made = await new_webhook(open_client, tenant, receiver)
    await ingest(db, tenant, "hello")
    await process_all(db, arq)
    await deliver(db, allowed, soon(), allow_private=False)
    assert receiver.received == []
    [entry] = (await deliveries(open_client, tenant, made["id"]))["deliveries"]
    assert entry["status_code"] is None
    assert entry["error"].startswith("refused:")
    assert "not public" in entry["error"]
    assert entry["next_attempt_at"] is not None


# ---------------------------------------------------------------- test sends and the log


async def test_a_test_send_answers_what_came_back(
    open_client: AsyncTestClient, tenant: Tenant, receiver: Receiver
) -> None:
    made = await new_webhook(open_client, tenant, receiver, event_types=["message.sent", "csat.submitted"])
    path = f"{BASE}/{made['id']}/test"
    receiver.answer = b"x" * (MAX_RESPONSE_BYTES * 3)
    sent = await open_client.post(path, headers=tenant.headers)
    assert sent.status_code == 200, sent.text
    result = sent.json()
    assert (result["succeeded"], result["status_code"], result["is_test"]) == (True, 200, True)
    assert result["event_type"] == "message.sent"
    assert result["delivery_id"] is None
    assert len(result["response_body"]) == MAX_RESPONSE_BYTES
    [got] = receiver.received
    assert got["verified"] is True
    assert got["body"]["test"] is True
    assert got["body"]["data"]["sender_type"] == "agent"

    receiver.status, receiver.answer = 500, b"boom"
    failed = (await open_client.post(path, json={"event_type": "csat.submitted"}, headers=tenant.headers)).json()
    assert (failed["succeeded"], failed["status_code"], failed["response_body"]) == (False, 500, "boom")
    assert receiver.received[-1]["body"]["type"] == "csat.submitted"
    # A failed test does not count against the endpoint.
    assert (await webhook(open_client, tenant, made["id"]))["consecutive_failures"] == 0

    problem(await open_client.post(path, json={"event_type": "order.paid"}, headers=tenant.headers), 422)
    problem(await open_client.post(path, json={"event_type": 5}, headers=tenant.headers), 400)
    problem(await open_client.post(path, json={"kind": "x"}, headers=tenant.headers), 400)
    problem(await open_client.post(f"{BASE}/{NOWHERE}/test", headers=tenant.headers), 404)
    log = await deliveries(open_client, tenant, made["id"])
    assert [e["id"] for e in log["deliveries"]] == [failed["id"], result["id"]]


async def test_an_unreachable_receiver_is_an_error_not_a_failure_of_the_api(
    open_client: AsyncTestClient, tenant: Tenant, receiver: Receiver
) -> None:
    made = await new_webhook(open_client, tenant, receiver)
    receiver.server.shutdown()
    receiver.server.server_close()
    result = (await open_client.post(f"{BASE}/{made['id']}/test", headers=tenant.headers)).json()
    assert (result["succeeded"], result["status_code"]) == (False, None)
    assert "Connect" in result["error"]


async def test_the_log_filters_and_pages(open_client: AsyncTestClient, tenant: Tenant, receiver: Receiver) -> None:
    made = await new_webhook(open_client, tenant, receiver, event_types=["message.sent", "sla.breached"])
    path = f"{BASE}/{made['id']}/test"
    await open_client.post(path, json={"event_type": "message.sent"}, headers=tenant.headers)
    receiver.status = 502
    failed = (await open_client.post(path, json={"event_type": "sla.breached"}, headers=tenant.headers)).json()
    assert (await deliveries(open_client, tenant, made["id"]))["total"] == 2
    only_failed = await deliveries(open_client, tenant, made["id"], succeeded="false")
    assert [e["id"] for e in only_failed["deliveries"]] == [failed["id"]]
    succeeded = await deliveries(open_client, tenant, made["id"], succeeded="true")
    assert [e["event_type"] for e in succeeded["deliveries"]] == ["message.sent"]
    by_type = await deliveries(open_client, tenant, made["id"], event_type="sla.breached")
    assert by_type["total"] == 1
    by_event = await deliveries(open_client, tenant, made["id"], event_id=failed["event_id"])
    assert [e["id"] for e in by_event["deliveries"]] == [failed["id"]]
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert (await deliveries(open_client, tenant, made["id"], created_from=later))["total"] == 0
    assert (await deliveries(open_client, tenant, made["id"], created_to=later))["total"] == 2
    first = await deliveries(open_client, tenant, made["id"], per_page=1)
    second = await deliveries(open_client, tenant, made["id"], per_page=1, cursor=first["next_cursor"])
    assert [first["deliveries"][0]["id"], second["deliveries"][0]["id"]] == [
        failed["id"],
        succeeded["deliveries"][0]["id"],
    ]
    assert second["next_cursor"] is None
    oldest = await deliveries(open_client, tenant, made["id"], sort_order="asc")
    assert oldest["deliveries"][0]["event_type"] == "message.sent"

    log_path = f"{BASE}/{made['id']}/deliveries"
    for params, status in (
        ({"succeeded": "maybe"}, 400),
        ({"event_id": "not-a-uuid"}, 400),
        ({"cursor": "yesterday"}, 400),
        ({"per_page": 0}, 400),
        ({"created_from": later, "created_to": datetime.now(UTC).isoformat()}, 422),
    ):
        problem(await open_client.get(log_path, params=params, headers=tenant.headers), status)
    problem(await open_client.get(f"{BASE}/{NOWHERE}/deliveries", headers=tenant.headers), 404)


async def test_deleting_an_endpoint_removes_its_pending_deliveries(
    open_client: AsyncTestClient,
    tenant: Tenant,
    db: Database,
    arq: ArqRedis,
    allowed: Settings,
    receiver: Receiver,
) -> None:
    made = await new_webhook(open_client, tenant, receiver)
    await ingest(db, tenant, "hello")
    await process_all(db, arq)
    assert len(await stored_deliveries(db, tenant)) == 1
    await open_client.delete(f"{BASE}/{made['id']}", headers=tenant.headers)
    assert await stored_deliveries(db, tenant) == []
    assert await deliver(db, allowed, soon()) == 0
    assert receiver.received == []


async def test_a_second_tenants_events_reach_only_its_own_endpoints(
    open_client: AsyncTestClient,
    tenant: Tenant,
    other_tenant: Tenant,
    db: Database,
    arq: ArqRedis,
    allowed: Settings,
    receiver: Receiver,
) -> None:
    ours = await new_webhook(open_client, tenant, receiver)
    await ingest(db, other_tenant, "theirs")
    await process_all(db, arq)
    assert await deliver(db, allowed, soon()) == 0
    assert (await deliveries(open_client, tenant, ours["id"]))["total"] == 0


async def test_the_worker_is_woken_by_a_fan_out(
    open_client: AsyncTestClient,
    tenant: Tenant,
    db: Database,
    arq: ArqRedis,
    allowed: Settings,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # With polling out of the picture, only the notification at commit can bring the delivery.
    monkeypatch.setattr(tasks, "POLL_SECONDS", 60.0)
    await new_webhook(open_client, tenant, receiver)
    dispatcher = asyncio.create_task(tasks.Dispatcher(db, allowed).run())
    try:
        await asyncio.sleep(0.5)  # it has looked once, found nothing, and waits
        await ingest(db, tenant, "wake up")
        await process_all(db, arq)
        for _ in range(50):
            if receiver.received:
                break
            await asyncio.sleep(0.1)
        [got] = receiver.received
        assert got["verified"] is True
        assert got["body"]["data"]["message"]["text"] == "wake up"
    finally:
        dispatcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await dispatcher


async def test_the_log_keeps_thirty_days(
    open_client: AsyncTestClient,
    tenant: Tenant,
    db: Database,
    arq: ArqRedis,
    allowed: Settings,
    receiver: Receiver,
) -> None:
    made = await new_webhook(open_client, tenant, receiver)
    await ingest(db, tenant, "hello")
    await process_all(db, arq)
    delivered_at = soon()
    await deliver(db, allowed, delivered_at)
    month_on = delivered_at + tasks.LOG_RETENTION
    recent = await service.send_test(
        db, allowed, Actor.automation(UUID(tenant.id)), UUID(made["id"]), None, now=month_on
    )
    ctx = {"db": db}
    assert await tasks.purge_webhook_log(ctx, now=month_on - timedelta(minutes=1)) == 0
    assert await tasks.purge_webhook_log(ctx, now=month_on + timedelta(minutes=1)) == 2  # the attempt, the delivery
    assert await stored_deliveries(db, tenant) == []
    assert [e["id"] for e in (await deliveries(open_client, tenant, made["id"]))["deliveries"]] == [str(recent.id)]
