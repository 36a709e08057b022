"""Campaigns as a supervisor drives them through the HTTP API, and the worker that sends them:
paced at the account's rate, each recipient sent once even when a worker dies mid-batch, through
the normal delivery path to the Graph API stand-in, with counts that follow the status webhooks."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from omnistream.campaigns import service
from omnistream.config import Settings
from omnistream.db import Database
from omnistream.messages.tasks import deliver_message
from tests.conftest import Tenant, create_agent, headers_of, ingest, problem
from tests.standins import GraphStandIn
from tests.wa_template_helpers import approved_template
from tests.webhook_helpers import connect_account, drain, phone_id, signed, wa_status, wa_text, whatsapp

BASE = "/api/campaigns"
NOWHERE = "00000000-0000-4000-8000-000000000000"
APP_SECRET = "app-secret-of-the-campaigns-01"
PROMO = [{"type": "BODY", "text": "Hi {{1}}, {{2}} off today"}]


def promo(first: str = "{{contact.name}}", second: str = "20%") -> dict[str, Any]:
    return {
        "name": "promo",
        "language": "en",
        "components": [
            {"type": "body", "parameters": [{"type": "text", "text": first}, {"type": "text", "text": second}]}
        ],
    }


class Shop:
    """A tenant with a connected WhatsApp number, an approved template and customers who wrote."""

    def __init__(self, tenant: Tenant, account_id: str, number: str) -> None:
        self.tenant, self.account_id, self.number = tenant, account_id, number


async def superuser(database: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def shop_of(database: str, settings: Settings, tenant: Tenant) -> Shop:
    number = phone_id()
    account_id = await connect_account(
        database, settings, tenant.id, "whatsapp", number, app_secret=APP_SECRET, business_account_id="100000000000001"
    )
    await approved_template(database, tenant.id, "promo", "en", PROMO)
    return Shop(tenant, str(account_id), number)


@pytest.fixture
async def shop(database: str, settings: Settings, tenant: Tenant) -> Shop:
    return await shop_of(database, settings, tenant)


async def customer(db: Database, shop: Shop, wa_id: str | None = None, name: str = "Kerry") -> str:
    result = await ingest(
        db,
        shop.tenant,
        "hi",
        external_id=wa_id or f"1631{uuid4().int % 10**7:07d}",
        contact_name=name,
        account_id=UUID(shop.account_id),
    )
    return str(result.contact_id)


async def new_campaign(client: AsyncTestClient, shop: Shop, who: Any = None, **fields: Any) -> dict[str, Any]:
    body = {"name": "Spring sale", "channel": "whatsapp", "account_id": shop.account_id, "template": promo()} | fields
    response = await client.post(BASE, json=body, headers=headers_of(who or shop.tenant))
    assert response.status_code == 201, response.text
    return response.json()


async def add(client: AsyncTestClient, shop: Shop, campaign: dict[str, Any], **body: Any) -> dict[str, Any]:
    response = await client.post(f"{BASE}/{campaign['id']}/recipients", json=body, headers=shop.tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def upload(client: AsyncTestClient, who: Any, campaign: dict[str, Any], text: str | bytes) -> Any:
    content = text.encode() if isinstance(text, str) else text
    files = {"file": ("list.csv", content, "text/csv")}
    return await client.post(f"{BASE}/{campaign['id']}/recipients", files=files, headers=headers_of(who))


async def send(client: AsyncTestClient, shop: Shop, campaign: dict[str, Any], **body: Any) -> dict[str, Any]:
    response = await client.post(f"{BASE}/{campaign['id']}/send", json=body, headers=shop.tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def shown(client: AsyncTestClient, shop: Shop, campaign: dict[str, Any]) -> dict[str, Any]:
    response = await client.get(f"{BASE}/{campaign['id']}", headers=shop.tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def recipients(client: AsyncTestClient, shop: Shop, campaign: dict[str, Any], **params: Any) -> dict[str, Any]:
    response = await client.get(f"{BASE}/{campaign['id']}/recipients", params=params, headers=shop.tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def batch(db: Database, arq: Any, settings: Settings, shop: Shop, campaign: dict[str, Any], now: datetime) -> int:
    return await service.send_batch(db, arq, settings, UUID(shop.tenant.id), UUID(campaign["id"]), now)


async def messages_of(database: str, campaign: dict[str, Any]) -> list[asyncpg.Record]:
    return await superuser(
        database,
        """SELECT m.id, m.status, m.content, m.text, c.contact_id FROM campaign_recipients r
             JOIN messages m ON m.tenant_id = r.tenant_id AND m.id = r.message_id
             JOIN conversations c ON c.tenant_id = m.tenant_id AND c.id = m.conversation_id
            WHERE r.campaign_id = $1""",
        UUID(campaign["id"]),
    )


def later(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


# ---------------------------------------------------------------- drafts


async def test_a_draft_is_made_with_a_checked_template_and_lists_its_variables(
    client: AsyncTestClient, shop: Shop
) -> None:
    campaign = await new_campaign(client, shop, template=promo(second="{{discount}}"))
    assert campaign["status"] == "draft"
    assert campaign["message_type"] == "template"
    assert campaign["variables"] == ["discount"]
    assert campaign["progress"]["total"] == 0
    got = await shown(client, shop, campaign)
    assert got["template"]["name"] == "promo"
    assert got["id"] == campaign["id"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"template": None, "text": "Hello"}, "template"),  # WhatsApp starts conversations with templates only
        ({"text": "Hello"}, "text"),
        ({"template": promo() | {"name": "unknown_one"}}, "template"),
        ({"template": promo() | {"components": []}}, "template.components"),  # the body has two variables
        ({"account_id": NOWHERE}, "account_id"),
        ({"channel": "messenger"}, "account_id"),  # the account is a WhatsApp one
        ({"template": promo(second="{{Bad-Name}}")}, "template"),
    ],
)
async def test_a_draft_that_could_not_be_sent_is_refused(
    client: AsyncTestClient, shop: Shop, database: str, fields: dict[str, Any], field: str
) -> None:
    body = {"name": "Spring sale", "channel": "whatsapp", "account_id": shop.account_id, "template": promo()} | fields
    body = {k: v for k, v in body.items() if v is not None}
    refusal = problem(await client.post(BASE, json=body, headers=shop.tenant.headers), 422)
    assert refusal["errors"][0]["field"] == field
    assert not await superuser(database, "SELECT 1 FROM campaigns")


async def test_text_campaigns_are_for_the_other_channels(
    client: AsyncTestClient, shop: Shop, database: str, settings: Settings
) -> None:
    page = await connect_account(database, settings, shop.tenant.id, "messenger", phone_id())
    body = {"name": "News", "channel": "messenger", "account_id": str(page)}
    assert problem(await client.post(BASE, json=body, headers=shop.tenant.headers), 422)["errors"][0]["field"] == "text"
    with_template = body | {"text": "Hi", "template": promo()}
    problem(await client.post(BASE, json=with_template, headers=shop.tenant.headers), 422)
    campaign = await new_campaign(client, shop, **body, text="Hello {{contact.name}}", template=None)
    assert campaign["message_type"] == "text"
    assert campaign["variables"] == []


async def test_a_disconnected_account_and_an_unapproved_template_are_refused(
    client: AsyncTestClient, shop: Shop, database: str, settings: Settings
) -> None:
    gone = await connect_account(database, settings, shop.tenant.id, "whatsapp", phone_id(), status="disconnected")
    body = {"name": "Spring sale", "channel": "whatsapp", "account_id": str(gone), "template": promo()}
    problem(await client.post(BASE, json=body, headers=shop.tenant.headers), 422)
    await approved_template(database, shop.tenant.id, "paused_one", "en", PROMO, status="PAUSED")
    body = body | {"account_id": shop.account_id, "template": promo() | {"name": "paused_one"}}
    assert "PAUSED" in problem(await client.post(BASE, json=body, headers=shop.tenant.headers), 422)["detail"]


@pytest.mark.parametrize(
    "body",
    [
        {"channel": "whatsapp", "template": promo()},  # no name
        {"name": "x", "channel": "sms", "account_id": NOWHERE},
        {"name": "x", "channel": "whatsapp", "account_id": "not-a-uuid"},
        {"name": "   ", "channel": "whatsapp", "account_id": NOWHERE},
        {"name": "x", "channel": "whatsapp", "account_id": NOWHERE, "colour": "red"},
    ],
)
async def test_a_malformed_draft_is_a_400(client: AsyncTestClient, shop: Shop, body: dict[str, Any]) -> None:
    problem(await client.post(BASE, json=body, headers=shop.tenant.headers), 400)


async def test_campaigns_are_for_supervisors_with_the_permission(client: AsyncTestClient, shop: Shop) -> None:
    agent = await create_agent(client, shop.tenant, "agent")
    supervisor = await create_agent(client, shop.tenant, "supervisor")
    campaign = await new_campaign(client, shop, who=supervisor)
    problem(await client.get(BASE, headers=agent["headers"]), 403)
    problem(await client.get(f"{BASE}/{campaign['id']}", headers=agent["headers"]), 403)
    body = {"name": "x", "channel": "whatsapp", "account_id": shop.account_id, "template": promo()}
    problem(await client.post(BASE, json=body, headers=agent["headers"]), 403)
    problem(await client.post(f"{BASE}/{campaign['id']}/send", json={}, headers=agent["headers"]), 403)
    problem(await client.post(f"{BASE}/{campaign['id']}/cancel", headers=agent["headers"]), 403)
    problem(await client.delete(f"{BASE}/{campaign['id']}", headers=agent["headers"]), 403)


async def test_another_organisations_campaign_is_not_found(
    client: AsyncTestClient, shop: Shop, other_tenant: Tenant, database: str, settings: Settings
) -> None:
    campaign = await new_campaign(client, shop)
    theirs = other_tenant.headers
    path = f"{BASE}/{campaign['id']}"
    problem(await client.get(path, headers=theirs), 404)
    problem(await client.patch(path, json={"name": "mine"}, headers=theirs), 404)
    problem(await client.delete(path, headers=theirs), 404)
    problem(await client.get(f"{path}/recipients", headers=theirs), 404)
    problem(await client.post(f"{path}/recipients", json={"filter": {}}, headers=theirs), 404)
    problem(await client.delete(f"{path}/recipients", headers=theirs), 404)
    problem(await client.post(f"{path}/send", json={}, headers=theirs), 404)
    problem(await client.post(f"{path}/cancel", headers=theirs), 404)
    assert (await client.get(BASE, headers=theirs)).json()["total"] == 0
    # Nor can a campaign of theirs go out through this organisation's account.
    body = {"name": "x", "channel": "whatsapp", "account_id": shop.account_id, "template": promo()}
    problem(await client.post(BASE, json=body, headers=theirs), 422)


async def test_the_list_filters_by_status_and_channel_and_pages(
    client: AsyncTestClient, shop: Shop, db: Database, database: str, settings: Settings
) -> None:
    page = await connect_account(database, settings, shop.tenant.id, "messenger", phone_id())
    first = await new_campaign(client, shop, name="First")
    second = await new_campaign(client, shop, name="Second")
    news = await new_campaign(
        client, shop, name="News", channel="messenger", account_id=str(page), text="Hi", template=None
    )
    await add(client, shop, second, contact_ids=[await customer(db, shop)])
    await send(client, shop, second, send_at=later(3600).isoformat())

    def names(response: Any) -> list[str]:
        assert response.status_code == 200, response.text
        return [c["name"] for c in response.json()["campaigns"]]

    headers = shop.tenant.headers
    assert names(await client.get(BASE, headers=headers)) == ["News", "Second", "First"]
    assert names(await client.get(BASE, params={"status": "scheduled"}, headers=headers)) == ["Second"]
    assert names(await client.get(BASE, params={"status": "draft", "channel": "whatsapp"}, headers=headers)) == [
        "First"
    ]
    assert names(await client.get(BASE, params={"channel": "messenger"}, headers=headers)) == ["News"]
    page_one = (await client.get(BASE, params={"per_page": 2}, headers=headers)).json()
    assert [c["id"] for c in page_one["campaigns"]] == [news["id"], second["id"]]
    assert page_one["total"] == 3
    rest = await client.get(BASE, params={"per_page": 2, "cursor": page_one["next_cursor"]}, headers=headers)
    assert names(rest) == ["First"]
    assert rest.json()["next_cursor"] is None
    assert first
    problem(await client.get(BASE, params={"status": "paused"}, headers=headers), 400)
    problem(await client.get(BASE, params={"per_page": 0}, headers=headers), 400)


async def test_only_a_draft_is_changed_or_deleted(client: AsyncTestClient, shop: Shop, db: Database) -> None:
    campaign = await new_campaign(client, shop)
    path = f"{BASE}/{campaign['id']}"
    changed = await client.patch(
        path, json={"name": "Summer sale", "template": promo(second="30%")}, headers=shop.tenant.headers
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["name"] == "Summer sale"
    assert changed.json()["template"]["components"][0]["parameters"][1]["text"] == "30%"
    problem(await client.patch(path, json={"template": promo() | {"name": "nope"}}, headers=shop.tenant.headers), 422)
    problem(await client.patch(path, json={"text": "plain"}, headers=shop.tenant.headers), 422)
    problem(await client.patch(path, json={"name": ""}, headers=shop.tenant.headers), 400)
    problem(await client.patch(path, json={"status": "sending"}, headers=shop.tenant.headers), 400)

    await add(client, shop, campaign, contact_ids=[await customer(db, shop)])
    await send(client, shop, campaign, send_at=later(600).isoformat())
    problem(await client.patch(path, json={"name": "Too late"}, headers=shop.tenant.headers), 409)
    problem(await client.delete(path, headers=shop.tenant.headers), 409)
    problem(await client.delete(f"{path}/recipients", headers=shop.tenant.headers), 409)
    problem(await client.post(f"{path}/recipients", json={"filter": {}}, headers=shop.tenant.headers), 409)
    problem(await client.post(f"{path}/send", json={}, headers=shop.tenant.headers), 409)

    draft = await new_campaign(client, shop)
    deleted = await client.delete(f"{BASE}/{draft['id']}", headers=shop.tenant.headers)
    assert deleted.status_code == 200
    assert deleted.json() == {"message": "campaign deleted", "id": draft["id"]}
    problem(await client.get(f"{BASE}/{draft['id']}", headers=shop.tenant.headers), 404)


# ---------------------------------------------------------------- recipients


async def test_recipients_by_ids_and_by_tags(client: AsyncTestClient, shop: Shop, db: Database) -> None:
    kerry = await customer(db, shop, name="Kerry")
    ana = await customer(db, shop, name="Ana")
    bo = await customer(db, shop, name="Bo")
    for contact, tags in ((kerry, ["vip", "es"]), (ana, ["vip"]), (bo, ["es"])):
        response = await client.patch(f"/api/contacts/{contact}", json={"tags": tags}, headers=shop.tenant.headers)
        assert response.status_code == 200, response.text
    campaign = await new_campaign(client, shop)
    added = await add(client, shop, campaign, filter={"tags": ["VIP"]})
    assert (added["added"], added["duplicates"], added["total"]) == (2, 0, 2)
    again = await add(client, shop, campaign, contact_ids=[kerry, bo, bo])
    assert (again["added"], again["duplicates"], again["total"]) == (1, 2, 3)
    listed = await recipients(client, shop, campaign, sort_order="asc")
    assert [r["contact_name"] for r in listed["recipients"]] == ["Kerry", "Ana", "Bo"]
    assert {r["status"] for r in listed["recipients"]} == {"pending"}
    both = await add(client, shop, await new_campaign(client, shop), filter={"tags": ["vip", "es"]})
    assert both["added"] == 1
    on_instagram = await add(client, shop, await new_campaign(client, shop), filter={"channel": "instagram"})
    assert on_instagram["added"] == 0


async def test_bad_recipient_requests_add_nothing(
    client: AsyncTestClient, shop: Shop, db: Database, other_tenant: Tenant, database: str, settings: Settings
) -> None:
    campaign = await new_campaign(client, shop)
    path = f"{BASE}/{campaign['id']}/recipients"
    headers = shop.tenant.headers
    theirs = await customer(db, await shop_of(database, settings, other_tenant))
    problem(await client.post(path, json={"contact_ids": [theirs]}, headers=headers), 422)
    problem(await client.post(path, json={}, headers=headers), 422)
    mine = await customer(db, shop)
    problem(await client.post(path, json={"contact_ids": [mine], "filter": {}}, headers=headers), 422)
    problem(await client.post(path, json={"contact_ids": []}, headers=headers), 400)
    problem(await client.post(path, json={"contact_ids": ["nope"]}, headers=headers), 400)
    problem(await client.post(path, json={"filter": {"tags": "vip"}}, headers=headers), 400)
    problem(await client.post(path, content=b"{not json", headers=headers | {"content-type": "application/json"}), 400)
    problem(await client.post(path, content=b"a=b", headers=headers | {"content-type": "text/plain"}), 415)
    problem(await client.post(path, files={"other": ("x.csv", b"phone\n1", "text/csv")}, headers=headers), 400)
    assert (await recipients(client, shop, campaign))["total"] == 0

    # A message naming CSV variables takes its recipients from a file that fills them.
    with_variables = await new_campaign(client, shop, template=promo(second="{{discount}}"))
    refusal = await client.post(
        f"{BASE}/{with_variables['id']}/recipients", json={"contact_ids": [mine]}, headers=headers
    )
    assert "discount" in problem(refusal, 422)["detail"]


async def test_a_csv_file_adds_numbers_with_their_variables_row_by_row(
    client: AsyncTestClient, shop: Shop, db: Database
) -> None:
    known = await customer(db, shop, wa_id="16315550001", name="Known")
    campaign = await new_campaign(client, shop, template=promo(second="{{discount}}"))
    text = (
        "Phone,name,discount\r\n"
        "+1 631 555 0001,Someone,10%\r\n"  # the contact who wrote already
        "16315550002,New Person,15%\r\n"
        "(1) 631-555-0002,Twice,15%\r\n"
        "12,Short,5%\r\n"
        "16315550003,No discount,\r\n"
        "16315550004,Too,many,cells\r\n"
        "\r\n"
        "'+16315550005,Quoted,'=1+1\r\n"
    )
    answer = await upload(client, shop.tenant, campaign, text)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    rows = {row["line"]: row for row in body["rows"]}
    assert (body["added"], body["duplicates"], body["refused"], body["total"]) == (3, 1, 3, 3)
    assert rows[2]["status"] == "added"
    assert rows[2]["contact_id"] == known
    assert rows[3]["status"] == "added"
    assert rows[4]["status"] == "duplicate"
    assert "line 3" in rows[4]["reason"]
    assert rows[5]["status"] == "refused"
    assert "phone number" in rows[5]["reason"]
    assert rows[6]["status"] == "refused"
    assert "discount" in rows[6]["reason"]
    assert rows[7]["status"] == "refused"
    assert "cells" in rows[7]["reason"]
    assert rows[9]["status"] == "added"
    listed = {r["contact_phone"]: r for r in (await recipients(client, shop, campaign))["recipients"]}
    assert listed["16315550002"]["contact_name"] == "New Person"
    assert listed["16315550002"]["variables"] == {"name": "New Person", "discount": "15%"}
    assert listed["16315550005"]["variables"]["discount"] == "=1+1"  # a spreadsheet's escape taken off once
    again = (await upload(client, shop.tenant, campaign, "phone,discount\n16315550002,1%\n")).json()
    assert (again["added"], again["duplicates"]) == (0, 1)
    assert "already" in again["rows"][0]["reason"]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "empty"),
        ("name,discount\nA,1\n", "phone column"),
        ("phone,name\n16315550002,A\n", "discount"),  # the message names {{discount}}
        ("phone,phone,discount\n1,1,1\n", "twice"),
        ("phone,Dis count\n1,1\n", "lowercase"),
        ('phone,discount\n"16315550002,1\n', "not valid CSV"),
        (b"phone,discount\n\xff\xfe,1\n", "UTF-8"),
    ],
)
async def test_a_file_that_cannot_be_read_is_a_422(
    client: AsyncTestClient, shop: Shop, text: str | bytes, words: str
) -> None:
    campaign = await new_campaign(client, shop, template=promo(second="{{discount}}"))
    assert words in problem(await upload(client, shop.tenant, campaign, text), 422)["detail"]
    assert (await recipients(client, shop, campaign))["total"] == 0


async def test_a_file_past_its_limits_is_refused(
    client: AsyncTestClient, shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign = await new_campaign(client, shop)
    monkeypatch.setattr(service, "MAX_CSV_ROWS", 3)
    four = "phone\n" + "".join(f"1631555000{i}\n" for i in range(4))
    assert "more than 3 rows" in problem(await upload(client, shop.tenant, campaign, four), 422)["detail"]
    three = "phone\n" + "".join(f"1631555000{i}\n" for i in range(3))
    assert (await upload(client, shop.tenant, campaign, three)).json()["added"] == 3
    monkeypatch.setattr(service, "MAX_CSV_BYTES", 64)
    big = "phone\n" + "16315550009\n" * 6
    problem(await upload(client, shop.tenant, campaign, big), 413)
    assert (await recipients(client, shop, campaign))["total"] == 3


async def test_only_whatsapp_campaigns_take_a_file_of_numbers(
    client: AsyncTestClient, shop: Shop, database: str, settings: Settings
) -> None:
    page = await connect_account(database, settings, shop.tenant.id, "messenger", phone_id())
    news = await new_campaign(client, shop, channel="messenger", account_id=str(page), text="Hi", template=None)
    problem(await upload(client, shop.tenant, news, "phone\n16315550002\n"), 422)


async def test_clearing_recipients_empties_a_draft(client: AsyncTestClient, shop: Shop, db: Database) -> None:
    campaign = await new_campaign(client, shop)
    await add(client, shop, campaign, contact_ids=[await customer(db, shop), await customer(db, shop)])
    cleared = await client.delete(f"{BASE}/{campaign['id']}/recipients", headers=shop.tenant.headers)
    assert cleared.status_code == 200
    assert cleared.json()["removed"] == 2
    assert (await shown(client, shop, campaign))["progress"]["total"] == 0


# ---------------------------------------------------------------- sending


async def test_send_needs_recipients_and_a_future_send_at(client: AsyncTestClient, shop: Shop, db: Database) -> None:
    campaign = await new_campaign(client, shop)
    path = f"{BASE}/{campaign['id']}/send"
    assert "no recipients" in problem(await client.post(path, json={}, headers=shop.tenant.headers), 422)["detail"]
    await add(client, shop, campaign, contact_ids=[await customer(db, shop)])
    past = {"send_at": later(-60).isoformat()}
    problem(await client.post(path, json=past, headers=shop.tenant.headers), 422)
    far = {"send_at": later(400 * 86400).isoformat()}
    problem(await client.post(path, json=far, headers=shop.tenant.headers), 422)
    problem(await client.post(path, json={"send_at": "tomorrow"}, headers=shop.tenant.headers), 400)
    problem(await client.post(path, json={"send_at": "2030-01-01T10:00:00"}, headers=shop.tenant.headers), 400)
    assert (await shown(client, shop, campaign))["status"] == "draft"


async def test_a_scheduled_campaign_waits_for_its_time(
    client: AsyncTestClient, shop: Shop, db: Database, arq: Any, settings: Settings, database: str
) -> None:
    campaign = await new_campaign(client, shop)
    await add(client, shop, campaign, contact_ids=[await customer(db, shop)])
    send_at = later(600)
    scheduled = await send(client, shop, campaign, send_at=send_at.isoformat())
    assert scheduled["status"] == "scheduled"
    assert await batch(db, arq, settings, shop, campaign, send_at - timedelta(seconds=1)) == 0
    assert not await messages_of(database, campaign)
    assert await batch(db, arq, settings, shop, campaign, send_at) == 1
    got = await shown(client, shop, campaign)
    assert got["status"] == "completed"
    assert got["progress"]["queued"] == 1


async def test_the_worker_keeps_to_the_accounts_rate(
    client: AsyncTestClient, shop: Shop, db: Database, arq: Any, settings: Settings, database: str
) -> None:
    campaign = await new_campaign(client, shop)
    await add(client, shop, campaign, contact_ids=[await customer(db, shop) for _ in range(12)])
    account = f"/api/integration-accounts/{shop.account_id}"
    for wrong in (0, 10_001, "fast", 2.5):
        problem(await client.patch(account, json={"messages_per_second": wrong}, headers=shop.tenant.headers), 400)
    rate = await client.patch(account, json={"messages_per_second": 4}, headers=shop.tenant.headers)
    assert rate.status_code == 200, rate.text
    assert rate.json()["messages_per_second"] == 4
    await send(client, shop, campaign)
    start = datetime.now(UTC)
    assert await batch(db, arq, settings, shop, campaign, start) == 4  # a second's worth to begin with
    assert await batch(db, arq, settings, shop, campaign, start) == 0  # spent
    assert await batch(db, arq, settings, shop, campaign, start + timedelta(seconds=0.5)) == 2
    # Idle for a minute, the account saves up no more than a second's worth.
    assert await batch(db, arq, settings, shop, campaign, start + timedelta(seconds=60)) == 4
    assert (await shown(client, shop, campaign))["status"] == "sending"
    assert await batch(db, arq, settings, shop, campaign, start + timedelta(seconds=61)) == 2
    got = await shown(client, shop, campaign)
    assert got["status"] == "completed"
    assert got["progress"]["queued"] == 12


async def test_campaigns_of_one_account_share_its_rate(
    client: AsyncTestClient, shop: Shop, db: Database, arq: Any, settings: Settings
) -> None:
    first, second = await new_campaign(client, shop), await new_campaign(client, shop)
    for campaign in (first, second):
        await add(client, shop, campaign, contact_ids=[await customer(db, shop) for _ in range(100)])
        await send(client, shop, campaign)
    now = datetime.now(UTC)
    sent = await batch(db, arq, settings, shop, first, now) + await batch(db, arq, settings, shop, second, now)
    assert sent == service.DEFAULT_MESSAGES_PER_SECOND


async def test_each_recipient_is_sent_once_when_a_worker_dies_mid_batch(
    client: AsyncTestClient, shop: Shop, db: Database, arq: Any, settings: Settings, database: str
) -> None:
    from omnistream.campaigns import repository

    campaign = await new_campaign(client, shop)
    contacts = [await customer(db, shop) for _ in range(10)]
    await add(client, shop, campaign, contact_ids=contacts)
    await send(client, shop, campaign)
    now = datetime.now(UTC)
    # A worker claims the first four and dies before committing: its locks hold until then.
    claimed, die = asyncio.Event(), asyncio.Event()

    async def dying_worker() -> None:
        async with db.tenant(UUID(shop.tenant.id)) as conn:
            held = await repository.claim_pending(conn, UUID(shop.tenant.id), UUID(campaign["id"]), 4)
            assert len(held) == 4
            claimed.set()
            await die.wait()
            raise ConnectionError("the worker died")

    worker = asyncio.create_task(dying_worker())
    await claimed.wait()
    # Meanwhile another worker passes over what is held and sends the rest.
    assert await batch(db, arq, settings, shop, campaign, now) == 6
    die.set()
    with pytest.raises(ConnectionError):
        await worker
    # Its recipients come back, and the next batch sends them.
    assert await batch(db, arq, settings, shop, campaign, now + timedelta(seconds=1)) == 4
    assert await batch(db, arq, settings, shop, campaign, now + timedelta(seconds=2)) == 0
    sent = await messages_of(database, campaign)
    assert sorted(str(m["contact_id"]) for m in sent) == sorted(contacts)
    assert (await shown(client, shop, campaign))["status"] == "completed"


async def test_opted_out_contacts_are_skipped_and_counted(
    client: AsyncTestClient, shop: Shop, db: Database, arq: Any, settings: Settings, database: str
) -> None:
    stays, leaves = await customer(db, shop), await customer(db, shop)
    campaign = await new_campaign(client, shop)
    opted = await client.patch(f"/api/contacts/{leaves}", json={"opted_out": True}, headers=shop.tenant.headers)
    assert opted.status_code == 200
    assert opted.json()["opted_out"] is True
    assert opted.json()["opted_out_at"]
    problem(await client.patch(f"/api/contacts/{leaves}", json={"opted_out": "yes"}, headers=shop.tenant.headers), 400)
    added = await add(client, shop, campaign, contact_ids=[stays, leaves])
    assert added["opted_out"] == 1
    assert added["added"] == 2
    await send(client, shop, campaign)
    assert await batch(db, arq, settings, shop, campaign, datetime.now(UTC)) == 2
    progress = (await shown(client, shop, campaign))["progress"]
    assert (progress["queued"], progress["skipped"]) == (1, 1)
    skipped = (await recipients(client, shop, campaign, status="skipped"))["recipients"]
    assert [(r["contact_id"], r["skip_reason"]) for r in skipped] == [(leaves, "opted_out")]
    assert [str(m["contact_id"]) for m in await messages_of(database, campaign)] == [stays]
    back = await client.patch(f"/api/contacts/{leaves}", json={"opted_out": False}, headers=shop.tenant.headers)
    assert back.json()["opted_out"] is False
    assert back.json()["opted_out_at"] is None


async def test_each_message_carries_its_recipients_values(
    client: AsyncTestClient, shop: Shop, db: Database, arq: Any, settings: Settings, database: str
) -> None:
    campaign = await new_campaign(client, shop, template=promo(second="{{discount}}"))
    await upload(client, shop.tenant, campaign, "phone,name,discount\n16315550007,Ana,15%\n")
    await send(client, shop, campaign)
    await batch(db, arq, settings, shop, campaign, datetime.now(UTC))
    [message] = await messages_of(database, campaign)
    params = message["content"]
    assert '"Ana"' in params
    assert '"15%"' in params
    assert "{{" not in params


async def test_cancel_stops_what_has_not_gone(
    client: AsyncTestClient, shop: Shop, db: Database, arq: Any, settings: Settings, database: str
) -> None:
    campaign = await new_campaign(client, shop)
    await add(client, shop, campaign, contact_ids=[await customer(db, shop) for _ in range(5)])
    rate = {"messages_per_second": 2}
    await client.patch(f"/api/integration-accounts/{shop.account_id}", json=rate, headers=shop.tenant.headers)
    await send(client, shop, campaign)
    assert await batch(db, arq, settings, shop, campaign, datetime.now(UTC)) == 2
    [first, _] = await messages_of(database, campaign)
    assert (
        await deliver_message({"db": db, "settings": settings, "job_try": 1}, shop.tenant.id, str(first["id"]))
        == "sent"
    )
    cancelled = await client.post(f"{BASE}/{campaign['id']}/cancel", headers=shop.tenant.headers)
    assert cancelled.status_code == 200, cancelled.text
    body = cancelled.json()
    assert body["status"] == "cancelled"
    assert body["cancelled_at"]
    assert (body["progress"]["sent"], body["progress"]["cancelled"], body["progress"]["queued"]) == (1, 4, 0)
    assert await batch(db, arq, settings, shop, campaign, later(10)) == 0
    statuses = sorted(m["status"] for m in await messages_of(database, campaign))
    assert statuses == ["failed", "sent"]  # the withdrawn one never goes
    problem(await client.post(f"{BASE}/{campaign['id']}/cancel", headers=shop.tenant.headers), 409)
    draft = await new_campaign(client, shop)
    problem(await client.post(f"{BASE}/{draft['id']}/cancel", headers=shop.tenant.headers), 409)


async def test_a_completed_campaign_cannot_be_cancelled(
    client: AsyncTestClient, shop: Shop, db: Database, arq: Any, settings: Settings
) -> None:
    campaign = await new_campaign(client, shop)
    await add(client, shop, campaign, contact_ids=[await customer(db, shop)])
    await send(client, shop, campaign)
    await batch(db, arq, settings, shop, campaign, datetime.now(UTC))
    assert (await shown(client, shop, campaign))["status"] == "completed"
    problem(await client.post(f"{BASE}/{campaign['id']}/cancel", headers=shop.tenant.headers), 409)


async def test_a_disconnected_account_skips_what_is_left(
    client: AsyncTestClient, shop: Shop, db: Database, arq: Any, settings: Settings, database: str
) -> None:
    campaign = await new_campaign(client, shop)
    await add(client, shop, campaign, contact_ids=[await customer(db, shop) for _ in range(3)])
    await send(client, shop, campaign)
    await superuser(
        database, "UPDATE integration_accounts SET status = 'disconnected' WHERE id = $1", UUID(shop.account_id)
    )
    assert await batch(db, arq, settings, shop, campaign, datetime.now(UTC)) == 3
    got = await shown(client, shop, campaign)
    assert got["status"] == "completed"
    assert got["progress"]["skipped"] == 3
    assert not await messages_of(database, campaign)


async def test_counts_follow_the_status_webhooks_and_replies(
    client: AsyncTestClient,
    shop: Shop,
    db: Database,
    arq: Any,
    settings: Settings,
    database: str,
    graph: GraphStandIn,
) -> None:
    numbers = ["16315550101", "16315550102", "16315550103"]
    for number in numbers:
        await customer(db, shop, wa_id=number)
    campaign = await new_campaign(client, shop)
    await add(client, shop, campaign, filter={})
    await send(client, shop, campaign)
    assert await batch(db, arq, settings, shop, campaign, datetime.now(UTC)) == 3
    ctx = {"db": db, "settings": settings, "job_try": 1}
    sent = await messages_of(database, campaign)
    request_of = {}
    for message in sent:
        assert await deliver_message(ctx, shop.tenant.id, str(message["id"])) == "sent"
        request_of[message["id"]] = graph.requests(path_contains=f"/{shop.number}/messages", method="POST")[-1]
    requests = list(request_of.values())
    assert sorted(r["body"]["to"] for r in requests) == numbers
    assert {r["body"]["template"]["name"] for r in requests} == {"promo"}
    assert {r["body"]["template"]["components"][0]["parameters"][0]["text"] for r in requests} == {"Kerry"}

    wamid_of = {
        request_of[r["id"]]["body"]["to"]: r["provider_message_id"]
        for r in await superuser(
            database, "SELECT id, provider_message_id FROM messages WHERE id = ANY($1)", [m["id"] for m in sent]
        )
    }
    statuses = [
        wa_status(wamid_of[numbers[0]], "delivered"),
        wa_status(wamid_of[numbers[1]], "read"),
        wa_status(wamid_of[numbers[2]], "failed", errors=[{"code": 131026, "title": "Message undeliverable"}]),
    ]
    raw, headers = signed(whatsapp(shop.number, statuses=statuses), APP_SECRET)
    assert (await client.post("/api/webhooks/meta", content=raw, headers=headers)).status_code == 200
    await drain(arq, db, settings)
    raw, headers = signed(whatsapp(shop.number, messages=[wa_text("Yes please", sender=numbers[1])]), APP_SECRET)
    assert (await client.post("/api/webhooks/meta", content=raw, headers=headers)).status_code == 200
    await drain(arq, db, settings)

    progress = (await shown(client, shop, campaign))["progress"]
    assert progress == {
        "total": 3,
        "pending": 0,
        "queued": 0,
        "sent": 2,
        "delivered": 2,
        "read": 1,
        "replied": 1,
        "failed": 1,
        "skipped": 0,
        "cancelled": 0,
    }
    failed = (await recipients(client, shop, campaign, status="failed"))["recipients"]
    assert len(failed) == 1
    assert failed[0]["error_code"]
    problem(
        await client.get(f"{BASE}/{campaign['id']}/recipients", params={"status": "lost"}, headers=shop.tenant.headers),
        400,
    )


async def test_the_recipient_list_pages(client: AsyncTestClient, shop: Shop, db: Database) -> None:
    campaign = await new_campaign(client, shop)
    await add(client, shop, campaign, contact_ids=[await customer(db, shop) for _ in range(3)])
    first = await recipients(client, shop, campaign, per_page=2, sort_order="asc")
    assert len(first["recipients"]) == 2
    assert first["total"] == 3
    rest = await recipients(client, shop, campaign, per_page=2, sort_order="asc", cursor=first["next_cursor"])
    assert len(rest["recipients"]) == 1
    assert rest["next_cursor"] is None
    seen = {r["id"] for r in first["recipients"] + rest["recipients"]}
    assert len(seen) == 3
