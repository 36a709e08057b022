"""Outgoing webhooks end to end, with real processes: `omnistream dev --fake-meta` (the API, a
worker and the Graph API stand-in). A signed Meta webhook becomes a customer's message, and the
worker posts it, signed, to a receiver on loopback that verifies it as a receiver would."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from omnistream.cli import FAKE_META_APP_SECRET
from tests import test_channels_end_to_end as channels
from tests import test_outgoing_webhooks as outgoing
from tests.test_channels_end_to_end import System, eventually
from tests.test_outgoing_webhooks import Receiver
from tests.webhook_helpers import signed, wa_text, whatsapp

# The fixtures of those tests, used here as they are.
system = channels.system
receiver = outgoing.receiver


@pytest.fixture
def open_system(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> System:
    """The system, allowed to post to the loopback receiver."""
    monkeypatch.setenv("OMNISTREAM_WEBHOOKS_ALLOW_PRIVATE", "true")
    return request.getfixturevalue("system")


def test_a_customers_message_reaches_a_webhook_signed(open_system: System, receiver: Receiver) -> None:
    with httpx.Client(base_url=open_system.api, timeout=10) as http:
        auth, number, *_ = channels.sign_up_with_whatsapp(http)
        made = http.post(
            "/api/outgoing-webhooks",
            json={"url": receiver.url, "event_types": ["message.received"], "headers": {"X-Team": "blue"}},
            headers=auth,
        )
        assert made.status_code == 201, made.text
        receiver.secret = made.json()["secret"]

        raw, headers = signed(whatsapp(number, messages=[wa_text("Is my order on its way?")]), FAKE_META_APP_SECRET)
        assert http.post("/api/webhooks/meta", content=raw, headers=headers).status_code == 200

        def posted() -> list[dict[str, Any]]:
            return receiver.received

        [got] = eventually(posted, 20, log=open_system.log)
        assert got["verified"] is True
        assert got["headers"]["x-omnistream-event"] == "message.received"
        assert got["headers"]["x-team"] == "blue"
        assert got["body"]["type"] == "message.received"
        assert got["body"]["data"]["message"]["text"] == "Is my order on its way?"
        assert got["body"]["data"]["channel"] == "whatsapp"

        def logged() -> list[dict[str, Any]]:
            page = http.get(f"/api/outgoing-webhooks/{made.json()['id']}/deliveries", headers=auth).json()
            return page["deliveries"]

        [entry] = eventually(logged, 10, log=open_system.log)
        assert (entry["succeeded"], entry["status_code"], entry["attempt"]) == (True, 200, 1)
        assert entry["delivery_id"] == got["headers"]["x-omnistream-delivery"]
