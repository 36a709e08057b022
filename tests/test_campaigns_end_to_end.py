"""A campaign end to end, with real processes (`omnistream dev --fake-meta`: the API, a worker and
the Graph API stand-in): customers who wrote in get the campaign's template through the worker and
the delivery path, and its counts follow the stand-in's status webhooks and a customer's reply."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from omnistream.cli import FAKE_META_APP_SECRET
from tests.test_channels_end_to_end import BUSINESS_ACCOUNT_ID, System, eventually, sign_up_with_whatsapp, system  # noqa: F401 (the fixture)
from tests.wa_template_helpers import approved_template
from tests.webhook_helpers import signed, wa_text, whatsapp

CUSTOMERS = ["16315550201", "16315550202", "16315550203"]


def test_a_campaign_reaches_meta_and_its_counts_follow_the_receipts(system: System, database: str) -> None:  # noqa: F811
    with httpx.Client(base_url=system.api, timeout=10) as http:
        auth, number, tenant_id, account_id = sign_up_with_whatsapp(http, "Kopi Co")
        body = [{"type": "BODY", "text": "Hi {{1}}, this week: {{2}}"}]
        asyncio.run(
            approved_template(database, tenant_id, "weekly_offer", "en", body, business_account_id=BUSINESS_ACCOUNT_ID)
        )

        def webhook(message: dict[str, Any]) -> None:
            raw, headers = signed(whatsapp(number, messages=[message]), FAKE_META_APP_SECRET)
            assert http.post("/api/webhooks/meta", content=raw, headers=headers).status_code == 200

        for customer in CUSTOMERS:
            webhook(wa_text("Do you deliver?", sender=customer))
        eventually(
            lambda: http.get("/api/contacts", headers=auth).json()["total"] == len(CUSTOMERS), 15, log=system.log
        )

        campaign = http.post(
            "/api/campaigns",
            json={
                "name": "Weekly offer",
                "channel": "whatsapp",
                "account_id": account_id,
                "template": {
                    "name": "weekly_offer",
                    "language": "en",
                    "components": [
                        {
                            "type": "body",
                            "parameters": [
                                {"type": "text", "text": "{{contact.name}}"},
                                {"type": "text", "text": "two for one"},
                            ],
                        }
                    ],
                },
            },
            headers=auth,
        ).json()
        path = f"/api/campaigns/{campaign['id']}"
        added = http.post(f"{path}/recipients", json={"filter": {}}, headers=auth)
        assert added.json()["added"] == len(CUSTOMERS), added.text
        assert http.post(f"{path}/send", json={}, headers=auth).json()["status"] == "sending"

        def sent_to_meta() -> list[dict[str, Any]] | None:
            found = httpx.get(f"{system.graph}/_stand-in/requests", params={"path_contains": "/messages"}).json()
            templates = [r for r in found if r["body"].get("type") == "template"]
            return templates if len(templates) == len(CUSTOMERS) else None

        requests = eventually(sent_to_meta, 20, log=system.log)
        assert sorted(r["body"]["to"] for r in requests) == CUSTOMERS
        assert {r["body"]["template"]["name"] for r in requests} == {"weekly_offer"}

        def progress() -> dict[str, Any]:
            return http.get(path, headers=auth).json()["progress"]

        # The stand-in's receipts (sent, delivered, read) reach the counts.
        eventually(lambda: progress()["read"] == len(CUSTOMERS), 20, log=system.log)
        webhook(wa_text("Two please!", sender=CUSTOMERS[0]))
        final = eventually(lambda: (p := progress())["replied"] == 1 and p, 15, log=system.log)
        assert final | {"replied": 1} == {
            "total": 3,
            "pending": 0,
            "queued": 0,
            "sent": 3,
            "delivered": 3,
            "read": 3,
            "replied": 1,
            "failed": 0,
            "skipped": 0,
            "cancelled": 0,
        }
        assert http.get(path, headers=auth).json()["status"] == "completed"
