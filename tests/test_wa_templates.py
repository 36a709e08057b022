"""WhatsApp templates: created at Meta (the Graph stand-in), synced page by page, listed, and held
against every template message sent."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from litestar.testing import AsyncTestClient

from omnistream.config import Settings
from omnistream.errors import Unprocessable
from omnistream.wa_templates.service import check_parameters
from tests.conftest import Tenant, create_agent, ingest, problem
from tests.standins import GraphStandIn
from tests.webhook_helpers import connect_account

URL = "/api/wa-templates"


def waba() -> str:
    return str(10**14 + uuid4().int % 10**14)


@pytest.fixture
async def account(database: str, settings: Settings, tenant: Tenant, graph: GraphStandIn) -> str:
    """The tenant's WhatsApp number; returns its business account id."""
    business_account_id = waba()
    await connect_account(
        database, settings, tenant.id, "whatsapp", str(uuid4().int % 10**15), business_account_id=business_account_id
    )
    return business_account_id


def order_update(name: str = "order_update", **overrides: Any) -> dict[str, Any]:
    return {
        "name": name,
        "language": "en_US",
        "category": "UTILITY",
        "components": [
            {"type": "HEADER", "format": "IMAGE", "example": {"header_handle": ["4::aW1hZ2UvcG5n:ARb"]}},
            {
                "type": "BODY",
                "text": "Hi {{1}}, order {{2}} ships today.",
                "example": {"body_text": [["Ada", "#42"]]},
            },
            {"type": "FOOTER", "text": "Reply STOP to opt out"},
            {
                "type": "BUTTONS",
                "buttons": [
                    {
                        "type": "URL",
                        "text": "Track",
                        "url": "https://shop.example/track/{{1}}",
                        "example": ["https://shop.example/track/42"],
                    },
                    {"type": "PHONE_NUMBER", "text": "Call us", "phone_number": "+15550051310"},
                ],
            },
        ],
    } | overrides


async def rows(database: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database)
    try:
        return await conn.fetch("SELECT * FROM wa_templates ORDER BY created_at")
    finally:
        await conn.close()


async def test_create_submits_to_meta_and_keeps_its_answer(
    client: AsyncTestClient, tenant: Tenant, account: str, graph: GraphStandIn
) -> None:
    body = order_update()
    response = await client.post(URL, json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    template = response.json()
    assert (template["name"], template["language"], template["category"]) == ("order_update", "en_US", "UTILITY")
    assert template["status"] == "PENDING"
    assert template["business_account_id"] == account
    assert template["provider_template_id"]

    (sent,) = graph.requests(path_contains=f"/{account}/message_templates", method="POST")
    assert sent["body"]["components"] == body["components"]
    assert sent["body"]["name"] == "order_update"
    assert sent["authorization"].startswith("Bearer ")

    got = await client.get(f"{URL}/{template['id']}", headers=tenant.headers)
    assert got.status_code == 200
    assert got.json()["components"] == body["components"]

    # The same name and language again: 409, and Meta is not asked.
    problem(await client.post(URL, json=body, headers=tenant.headers), 409)
    assert len(graph.requests(path_contains="/message_templates", method="POST")) == 1


async def test_meta_refusing_is_502_and_nothing_is_kept(
    client: AsyncTestClient, tenant: Tenant, account: str, graph: GraphStandIn, database: str
) -> None:
    graph.fail("invalid_parameter", path_contains="/message_templates")
    body = problem(await client.post(URL, json=order_update(), headers=tenant.headers), 502)
    assert "Meta" in body["detail"]
    assert await rows(database) == []


async def test_without_a_whatsapp_account_is_422(client: AsyncTestClient, tenant: Tenant, graph: GraphStandIn) -> None:
    body = problem(await client.post(URL, json=order_update(), headers=tenant.headers), 422)
    assert "connect a WhatsApp account first" in body["detail"]
    assert (
        "connect a WhatsApp account first"
        in problem(await client.post(f"{URL}/sync", headers=tenant.headers), 422)["detail"]
    )
    assert graph.requests(path_contains="/message_templates") == []


def with_component(index: int, component: dict[str, Any]) -> dict[str, Any]:
    body = order_update()
    body["components"][index] = component
    return body


BODY = {"type": "BODY", "text": "Hello {{1}}", "example": {"body_text": [["Ada"]]}}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (order_update(name="Order Update"), 400),
        (order_update(name="x" * 513), 400),
        (order_update(category="PROMOTION"), 400),
        (order_update(language="english!"), 400),
        (order_update(components=[]), 400),
        (with_component(0, {"type": "HEADER", "format": "GIF"}), 400),
        (with_component(2, {"type": "FOOTER", "text": "x" * 61}), 400),
        (with_component(1, {"type": "BODY", "text": "x" * 1025}), 400),
        (
            with_component(1, {"type": "BODY", "text": "Hi {{1}} and {{3}}", "example": {"body_text": [["a", "b"]]}}),
            422,
        ),
        (with_component(1, {"type": "BODY", "text": "Hi {{1}} and {{2}}", "example": {"body_text": [["a"]]}}), 422),
        (with_component(1, {"type": "BODY", "text": "Hi {{1}}"}), 422),
        (with_component(1, {"type": "BODY", "text": "Hi {{name}}", "example": {"body_text": [["a"]]}}), 422),
        (with_component(1, {"type": "BODY", "text": "Hi", "example": {"body_text": [["a"]]}}), 422),
        (with_component(0, {"type": "HEADER", "format": "IMAGE"}), 422),
        (with_component(0, {"type": "HEADER", "format": "TEXT", "text": "{{1}} and {{2}}"}), 422),
        (with_component(0, {"type": "HEADER", "format": "TEXT", "text": "Sale {{1}}"}), 422),
        (with_component(0, {"type": "HEADER", "format": "TEXT"}), 422),
        (with_component(0, BODY), 422),  # two bodies
        (with_component(2, {"type": "FOOTER", "text": "Bye {{1}}"}), 422),
        (with_component(3, {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "x" * 26}]}), 400),
        (
            with_component(
                3,
                {"type": "BUTTONS", "buttons": [{"type": "PHONE_NUMBER", "text": "a", "phone_number": "+1555005"}] * 2},
            ),
            422,
        ),
        (
            with_component(
                3,
                {
                    "type": "BUTTONS",
                    "buttons": [
                        {
                            "type": "URL",
                            "text": "a",
                            "url": "https://x.example/{{1}}/y",
                            "example": ["https://x.example/1/y"],
                        }
                    ],
                },
            ),
            422,
        ),
        (
            with_component(
                3, {"type": "BUTTONS", "buttons": [{"type": "URL", "text": "a", "url": "https://x.example/{{1}}"}]}
            ),
            422,
        ),
        (with_component(3, {"type": "BUTTONS", "buttons": [{"type": "COPY_CODE", "example": "x" * 16}]}), 400),
        (
            with_component(
                3,
                {
                    "type": "BUTTONS",
                    "buttons": [
                        {"type": "QUICK_REPLY", "text": "Yes"},
                        {"type": "PHONE_NUMBER", "text": "Call", "phone_number": "+15550051310"},
                        {"type": "QUICK_REPLY", "text": "No"},
                    ],
                },
            ),
            422,
        ),
        (with_component(3, {"type": "BUTTONS", "buttons": [{"type": "OTP", "otp_type": "COPY_CODE"}]}), 422),
        ({**order_update(), "surprise": 1}, 400),
    ],
)
async def test_bad_templates_are_refused_before_meta_hears_of_them(
    client: AsyncTestClient,
    tenant: Tenant,
    account: str,
    graph: GraphStandIn,
    database: str,
    body: dict[str, Any],
    status: int,
) -> None:
    problem(await client.post(URL, json=body, headers=tenant.headers), status)
    assert graph.requests(path_contains="/message_templates", method="POST") == []
    assert await rows(database) == []


async def test_an_authentication_template(
    client: AsyncTestClient, tenant: Tenant, account: str, graph: GraphStandIn
) -> None:
    body = {
        "name": "login_code",
        "language": "en",
        "category": "AUTHENTICATION",
        "components": [
            {"type": "BODY", "add_security_recommendation": True},
            {"type": "FOOTER", "code_expiration_minutes": 10},
            {"type": "BUTTONS", "buttons": [{"type": "OTP", "otp_type": "COPY_CODE", "text": "Copy code"}]},
        ],
    }
    response = await client.post(URL, json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    assert response.json()["category"] == "AUTHENTICATION"


def meta_template(number: int, **overrides: Any) -> dict[str, Any]:
    return {
        "name": f"promo_{number:03d}",
        "language": "en_US",
        "status": "APPROVED",
        "category": "MARKETING",
        "id": str(9 * 10**14 + number),
        "components": [{"type": "BODY", "text": f"Deal {number} for {{{{1}}}}", "example": {"body_text": [["Ada"]]}}],
        "quality_score": {"score": "GREEN", "date": 1700000000},
    } | overrides


async def test_the_stand_in_approves_what_was_submitted_and_a_sync_reads_it(
    client: AsyncTestClient, tenant: Tenant, account: str, graph: GraphStandIn
) -> None:
    body = {
        "name": "spring_sale",
        "language": "en",
        "category": "MARKETING",
        "components": [{"type": "BODY", "text": "Hi"}],
    }
    made = await client.post(URL, json=body, headers=tenant.headers)
    assert made.status_code == 201, made.text
    assert made.json()["status"] == "PENDING"
    assert graph.http.post(f"/_stand-in/templates/{account}/approve").json() == {"approved": 1}
    synced = await client.post(f"{URL}/sync", json={}, headers=tenant.headers)
    assert (synced.json()["updated"], synced.json()["total"]) == (1, 1)
    [template] = (await client.get(URL, headers=tenant.headers)).json()["templates"]
    assert (template["name"], template["status"]) == ("spring_sale", "APPROVED")


async def test_sync_follows_every_page(
    client: AsyncTestClient, tenant: Tenant, account: str, graph: GraphStandIn
) -> None:
    templates = [meta_template(n) for n in range(230)]
    graph.set_templates(account, templates)
    response = await client.post(f"{URL}/sync", json={}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "business_account_id": account,
        "created": 230,
        "updated": 0,
        "unchanged": 0,
        "total": 230,
    }
    pages = graph.requests(path_contains=f"/{account}/message_templates", method="GET")
    assert len(pages) == 3  # 100 + 100 + 30
    assert "after" not in pages[0]["query"]
    assert pages[1]["query"]["after"]
    assert "quality_score" in pages[0]["query"]["fields"].replace("%2C", ",")

    listed = (await client.get(URL, params={"per_page": 100}, headers=tenant.headers)).json()
    assert listed["total"] == 230

    # Meta's verdicts change two templates; the rest is as it was.
    templates[0] = meta_template(0, status="REJECTED", rejected_reason="INVALID_FORMAT")
    templates[1] = meta_template(1, quality_score={"score": "RED"})
    templates.append(meta_template(999))
    graph.set_templates(account, templates)
    response = await client.post(f"{URL}/sync", headers=tenant.headers)
    assert response.json() == {
        "business_account_id": account,
        "created": 1,
        "updated": 2,
        "unchanged": 228,
        "total": 231,
    }
    rejected = (await client.get(URL, params={"status": "REJECTED"}, headers=tenant.headers)).json()["templates"]
    assert [(t["name"], t["rejected_reason"]) for t in rejected] == [("promo_000", "INVALID_FORMAT")]


async def test_sync_failure_is_502(
    client: AsyncTestClient, tenant: Tenant, account: str, graph: GraphStandIn, database: str
) -> None:
    graph.set_templates(account, [meta_template(n) for n in range(5)])
    graph.fail("server_error", path_contains="/message_templates", times=5)
    problem(await client.post(f"{URL}/sync", headers=tenant.headers), 502)
    assert await rows(database) == []


async def test_list_filters(client: AsyncTestClient, tenant: Tenant, account: str, graph: GraphStandIn) -> None:
    graph.set_templates(
        account,
        [
            meta_template(1),
            meta_template(2, status="PENDING", language="pt_BR"),
            meta_template(3, category="UTILITY", name="shipping_notice"),
            meta_template(4, status="REJECTED", category="UTILITY", name="shipping_delay"),
        ],
    )
    assert (await client.post(f"{URL}/sync", headers=tenant.headers)).status_code == 200

    async def names(**params: Any) -> list[str]:
        response = await client.get(URL, params=params, headers=tenant.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["total"] == len(body["templates"])
        return sorted(t["name"] for t in body["templates"])

    assert await names() == ["promo_001", "promo_002", "shipping_delay", "shipping_notice"]
    assert await names(status="APPROVED") == ["promo_001", "shipping_notice"]
    assert await names(category="UTILITY") == ["shipping_delay", "shipping_notice"]
    assert await names(language="pt_BR") == ["promo_002"]
    assert await names(q="shipping") == ["shipping_delay", "shipping_notice"]
    assert await names(q="shipping", status="REJECTED") == ["shipping_delay"]
    assert await names(business_account_id=account) == await names()
    assert await names(business_account_id="123") == []

    first = (await client.get(URL, params={"per_page": 3}, headers=tenant.headers)).json()
    assert len(first["templates"]) == 3
    assert first["total"] == 4
    assert first["next_cursor"]
    rest = (
        await client.get(URL, params={"per_page": 3, "cursor": first["next_cursor"]}, headers=tenant.headers)
    ).json()
    assert len(rest["templates"]) == 1
    assert {t["id"] for t in first["templates"]}.isdisjoint(t["id"] for t in rest["templates"])

    for bad in ({"status": "GOOD"}, {"category": "x"}, {"q": "Has Spaces"}, {"language": "1"}, {"per_page": 0}):
        problem(await client.get(URL, params=bad, headers=tenant.headers), 400)


async def test_roles_and_tenants(
    client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant, account: str, graph: GraphStandIn
) -> None:
    created = (await client.post(URL, json=order_update(), headers=tenant.headers)).json()
    item = f"{URL}/{created['id']}"
    agent = await create_agent(client, tenant)
    assert (await client.get(URL, headers=agent["headers"])).json()["total"] == 1
    assert (await client.get(item, headers=agent["headers"])).status_code == 200
    problem(await client.post(URL, json=order_update(name="other"), headers=agent["headers"]), 403)
    problem(await client.post(f"{URL}/sync", headers=agent["headers"]), 403)
    problem(await client.delete(item, headers=agent["headers"]), 403)
    problem(
        await client.patch(
            f"{item}/header-media", json={"header_media_url": "https://cdn.example/a.png"}, headers=agent["headers"]
        ),
        403,
    )
    supervisor = await create_agent(client, tenant, role="supervisor")
    problem(await client.post(URL, json=order_update(name="other"), headers=supervisor["headers"]), 403)

    # Another organisation sees none of it.
    assert (await client.get(URL, headers=other_tenant.headers)).json()["total"] == 0
    problem(await client.get(item, headers=other_tenant.headers), 404)
    problem(await client.delete(item, headers=other_tenant.headers), 404)
    problem(
        await client.patch(
            f"{item}/header-media", json={"header_media_url": "https://cdn.example/a.png"}, headers=other_tenant.headers
        ),
        404,
    )
    assert (await client.get(item, headers=tenant.headers)).status_code == 200


async def test_header_media_and_delete(
    client: AsyncTestClient, tenant: Tenant, account: str, graph: GraphStandIn
) -> None:
    image = (await client.post(URL, json=order_update(), headers=tenant.headers)).json()
    text_only = (
        await client.post(
            URL,
            json=order_update(name="plain", components=[{"type": "BODY", "text": "Thanks!"}]),
            headers=tenant.headers,
        )
    ).json()
    response = await client.patch(
        f"{URL}/{image['id']}/header-media",
        json={"header_media_url": "https://cdn.example/box.png"},
        headers=tenant.headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["header_media_url"] == "https://cdn.example/box.png"
    for bad in ("http://cdn.example/box.png", "ftp://x/y", "https://", "not a url"):
        problem(
            await client.patch(
                f"{URL}/{image['id']}/header-media", json={"header_media_url": bad}, headers=tenant.headers
            ),
            400,
        )
    problem(await client.patch(f"{URL}/{image['id']}/header-media", json={}, headers=tenant.headers), 400)
    body = problem(
        await client.patch(
            f"{URL}/{text_only['id']}/header-media",
            json={"header_media_url": "https://cdn.example/a.png"},
            headers=tenant.headers,
        ),
        422,
    )
    assert "IMAGE, VIDEO or DOCUMENT" in body["detail"]

    deleted = await client.delete(f"{URL}/{image['id']}", headers=tenant.headers)
    assert deleted.status_code == 200
    assert deleted.json() == {"message": "template deleted", "id": image["id"]}
    problem(await client.get(f"{URL}/{image['id']}", headers=tenant.headers), 404)
    problem(await client.delete(f"{URL}/{image['id']}", headers=tenant.headers), 404)
    # Local only: Meta was asked nothing but the two creations.
    assert [r["method"] for r in graph.requests(path_contains="/message_templates")] == ["POST", "POST"]


# ---------------------------------------------------------------- sends held to the template


async def approved(
    client: AsyncTestClient, tenant: Tenant, account: str, graph: GraphStandIn, *templates: dict[str, Any]
) -> None:
    graph.set_templates(account, [meta_template(n, **t) for n, t in enumerate(templates)])
    assert (await client.post(f"{URL}/sync", headers=tenant.headers)).status_code == 200


async def test_template_messages_are_checked_before_they_are_queued(
    client: AsyncTestClient, tenant: Tenant, account: str, graph: GraphStandIn, db: Any
) -> None:
    await approved(
        client,
        tenant,
        account,
        graph,
        {
            "name": "order_update",
            **{k: v for k, v in order_update().items() if k == "components"},
            "category": "UTILITY",
        },
        {"name": "under_review", "status": "PENDING"},
    )
    inbound = await ingest(db, tenant, "where is my order?")
    url = f"/api/conversations/{inbound.conversation_id}/messages"

    def message(name: str, components: list[dict[str, Any]]) -> dict[str, Any]:
        return {"type": "template", "template": {"name": name, "language": "en_US", "components": components}}

    body = {"type": "body", "parameters": [{"type": "text", "text": "Ada"}, {"type": "text", "text": "#42"}]}
    header = {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://cdn.example/p.png"}}]}
    button = {"type": "button", "sub_type": "url", "index": "0", "parameters": [{"type": "text", "text": "42"}]}

    for name, components, words in [
        ("order_update", [header, {"type": "body", "parameters": body["parameters"][:1]}, button], "2 variables"),
        ("order_update", [header, body], "button 0"),
        ("order_update", [body, button], "IMAGE header"),
        ("under_review", [], "PENDING"),
        ("never_made", [], "sync"),
    ]:
        refused = problem(await client.post(url, json=message(name, components), headers=tenant.headers), 422)
        assert words in refused["detail"], refused["detail"]
    listed = (await client.get(url, headers=tenant.headers)).json()
    assert [m["direction"] for m in listed["messages"]] == ["inbound"]

    sent = await client.post(url, json=message("order_update", [header, body, button]), headers=tenant.headers)
    assert sent.status_code == 201, sent.text
    assert sent.json()["content"]["template"]["components"] == [header, body, button]

    # With header media set on the template, a send may leave the header out.
    template_id = (await client.get(URL, params={"q": "order_update"}, headers=tenant.headers)).json()["templates"][0][
        "id"
    ]
    await client.patch(
        f"{URL}/{template_id}/header-media",
        json={"header_media_url": "https://cdn.example/box.png"},
        headers=tenant.headers,
    )
    sent = await client.post(url, json=message("order_update", [body, button]), headers=tenant.headers)
    assert sent.status_code == 201, sent.text
    assert sent.json()["content"]["template"]["components"][0] == {
        "type": "header",
        "parameters": [{"type": "image", "image": {"link": "https://cdn.example/box.png"}}],
    }


def body_template(count: int) -> list[dict[str, Any]]:
    text = "Hello " + " ".join(f"{{{{{n}}}}}" for n in range(1, count + 1))
    return [{"type": "BODY", "text": text}]


@given(count=st.integers(min_value=0, max_value=12), given_count=st.integers(min_value=0, max_value=14))
def test_exactly_as_many_parameters_as_placeholders_pass(count: int, given_count: int) -> None:
    parameters = [{"type": "text", "text": f"value {n}"} for n in range(given_count)]
    components = [{"type": "body", "parameters": parameters}] if given_count else []
    if given_count == count:
        sent = check_parameters(body_template(count), "MARKETING", None, components)
        assert sent == components
    else:
        with pytest.raises(Unprocessable):
            check_parameters(body_template(count), "MARKETING", None, components)
