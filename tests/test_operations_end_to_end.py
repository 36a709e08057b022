"""Operations end to end, with real processes: `omnistream dev --fake-meta` (the API, a worker and
the Graph API stand-in) on the test's database."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from omnistream.cli import FAKE_META_APP_SECRET
from tests.test_channels_end_to_end import System, eventually, sign_up_with_whatsapp, system  # noqa: F401 (the fixture)
from tests.webhook_helpers import signed, wa_text, whatsapp

LEAD_SECONDS = 2
SWEEP_SECONDS = 5


@pytest.fixture
def quick_system(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> System:
    """The system, taking messages scheduled a couple of seconds ahead (not the minute users must give)."""
    monkeypatch.setenv("OMNISTREAM_SCHEDULED_MESSAGE_MIN_LEAD_SECONDS", str(LEAD_SECONDS))
    return request.getfixturevalue("system")


def test_a_scheduled_message_goes_out_at_its_time_through_the_worker(quick_system: System) -> None:
    with httpx.Client(base_url=quick_system.api, timeout=10) as http:
        auth, number, *_ = sign_up_with_whatsapp(http, "Later Co")
        raw, headers = signed(whatsapp(number, messages=[wa_text("Call me back tomorrow")]), FAKE_META_APP_SECRET)
        assert http.post("/api/webhooks/meta", content=raw, headers=headers).status_code == 200

        def the_conversation() -> dict[str, Any] | None:
            listed = http.get("/api/conversations", headers=auth).json()["conversations"]
            return listed[0] if listed else None

        conversation = eventually(the_conversation, 10, log=quick_system.log)
        send_at = datetime.now(UTC) + timedelta(seconds=LEAD_SECONDS + 1)
        scheduled = http.post(
            f"/api/conversations/{conversation['id']}/scheduled-messages",
            json={"text": "Good morning! Calling you now.", "send_at": send_at.isoformat().replace("+00:00", "Z")},
            headers=auth,
        )
        assert scheduled.status_code == 201, scheduled.text

        def sent_to_meta() -> list[dict[str, Any]]:
            return httpx.get(f"{quick_system.graph}/_stand-in/requests", params={"path_contains": "/messages"}).json()

        [request] = eventually(sent_to_meta, 20, log=quick_system.log)
        arrived = datetime.now(UTC)
        assert arrived >= send_at
        assert request["path"].endswith(f"/{number}/messages")
        assert request["body"]["text"] == {"body": "Good morning! Calling you now."}

        listed = http.get(f"/api/conversations/{conversation['id']}/scheduled-messages", headers=auth).json()
        [row] = listed["scheduled_messages"]
        assert row["status"] == "sent"
        message = http.get(f"/api/conversations/{conversation['id']}/messages", headers=auth).json()["messages"][0]
        assert message["id"] == row["message_id"]
        assert message["sender_type"] == "agent"
        # Sent once: the worker's next sweep (every 5 seconds) finds nothing more to send.
        time.sleep(SWEEP_SECONDS + 0.5)
        assert len(sent_to_meta()) == 1
        cancelled = http.delete(f"/api/scheduled-messages/{row['id']}", headers=auth)
        assert cancelled.status_code == 409
