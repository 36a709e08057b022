"""WhatsApp end to end, with real processes: `omnistream dev --fake-meta` (the API, a worker and
the Graph API stand-in) on the test's database. A signed webhook becomes a conversation, an
agent's reply goes out to the stand-in, and the stand-in's status webhooks mark it delivered,
then read."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest
import redis

from omnistream.cli import FAKE_META_APP_SECRET
from omnistream.config import Settings
from tests.standins import free_port
from tests.webhook_helpers import phone_id, signed, wa_text, whatsapp


class System:
    def __init__(self, api: str, graph: str, log: Path, settings: Settings) -> None:
        self.api, self.graph, self.log, self.settings = api, graph, log, settings


@pytest.fixture
def system(settings: Settings, database: str, tmp_path: Path) -> Iterator[System]:
    port = free_port()
    env = os.environ | {
        "DATABASE_URL": settings.database_url,
        "MIGRATIONS_DATABASE_URL": database,
        "REDIS_URL": settings.redis_url,
        "OMNISTREAM_REDIS_PREFIX": settings.redis_prefix,
        "OMNISTREAM_JWT_SECRET": settings.jwt_secret,
        "OMNISTREAM_DATA_DIR": str(tmp_path),
        "OMNISTREAM_ENV": "development",
        "PYTHONUNBUFFERED": "1",
    }
    for name in ("PROMETHEUS_MULTIPROC_DIR", "OMNISTREAM_META_APP_SECRET", "OMNISTREAM_GRAPH_API_URL"):
        env.pop(name, None)
    log_path = tmp_path / "dev.log"
    log = log_path.open("wb")
    dev = subprocess.Popen(
        [sys.executable, "-m", "omnistream.cli", "dev", "--port", str(port), "--fake-meta"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        graph = eventually(lambda: _announced_stand_in(log_path), 60, dev, log_path)
        eventually(lambda: _healthy(f"http://127.0.0.1:{port}"), 60, dev, log_path)
        yield System(f"http://127.0.0.1:{port}", graph, log_path, settings)
        dev.send_signal(signal.SIGTERM)
        assert dev.wait(30) == 0, log_path.read_text()
    finally:
        if dev.poll() is None:
            dev.kill()
            dev.wait(10)
        log.close()


def _announced_stand_in(log: Path) -> str | None:
    found = re.search(r"Graph API stand-in on (http://[0-9.:]+)", log.read_text())
    return found.group(1) if found else None


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/api/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def eventually(check: Callable[[], Any], seconds: float, process: Any = None, log: Path | None = None) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        if process is not None:
            assert process.poll() is None, log.read_text() if log else "the process exited"
        if result := check():
            return result
        assert time.monotonic() < deadline, log.read_text() if log else "not in time"
        time.sleep(0.1)


class SignedUp(NamedTuple):
    auth: dict[str, str]
    number: str
    """The connected WhatsApp number's id (its phone_number_id)."""
    tenant_id: str
    account_id: str


BUSINESS_ACCOUNT_ID = "102290129340398"


def sign_up_with_whatsapp(http: httpx.Client, organization: str = "Kopi Co") -> SignedUp:
    """Register an organisation over HTTP, as a new tenant would, and connect a WhatsApp number."""
    registered = http.post(
        "/api/auth/register",
        json={
            "organization_name": organization,
            "name": "Ada",
            "email": f"ada@{organization.lower().replace(' ', '-')}.test",
            "password": "a long password",
        },
    )
    assert registered.status_code == 201, registered.text
    http.cookies.clear()
    auth = {"authorization": f"Bearer {registered.json()['access_token']}"}
    number = phone_id()
    account = http.post(
        "/api/integration-accounts",
        json={
            "channel": "whatsapp",
            "name": "Support line",
            "external_id": number,
            "display_name": "+1 555 0100",
            "business_account_id": BUSINESS_ACCOUNT_ID,
            "access_token": "EAAG-kopi-token",
        },
        headers=auth,
    )
    assert account.status_code == 201, account.text
    return SignedUp(auth, number, registered.json()["agent"]["tenant"]["id"], account.json()["id"])


def test_a_whatsapp_conversation_end_to_end(system: System) -> None:
    with httpx.Client(base_url=system.api, timeout=10) as http:
        auth, number, *_ = sign_up_with_whatsapp(http)

        raw, headers = signed(whatsapp(number, messages=[wa_text("Is my order on its way?")]), FAKE_META_APP_SECRET)
        acknowledged = http.post("/api/webhooks/meta", content=raw, headers=headers)
        assert acknowledged.json() == {"received": 1, "queued": 1, "ignored": 0}

        def the_conversation() -> dict[str, Any] | None:
            listed = http.get("/api/conversations", headers=auth).json()["conversations"]
            return listed[0] if listed else None

        conversation = eventually(the_conversation, 10, log=system.log)
        [inbound] = http.get(f"/api/conversations/{conversation['id']}/messages", headers=auth).json()["messages"]
        assert inbound["text"] == "Is my order on its way?"

        reply = http.post(
            f"/api/conversations/{conversation['id']}/messages", json={"text": "Yes, tomorrow!"}, headers=auth
        )
        assert reply.status_code == 201, reply.text

        def sent_to_meta() -> list[dict[str, Any]]:
            return httpx.get(f"{system.graph}/_stand-in/requests", params={"path_contains": "/messages"}).json()

        [request] = eventually(sent_to_meta, 10, log=system.log)
        assert request["path"].endswith(f"/{number}/messages")
        assert request["authorization"] == "Bearer EAAG-kopi-token"
        assert request["body"]["text"] == {"body": "Yes, tomorrow!"}

        seen: list[str] = []

        def read() -> dict[str, Any] | None:
            message = http.get(f"/api/conversations/{conversation['id']}/messages", headers=auth).json()["messages"][0]
            if not seen or seen[-1] != message["status"]:
                seen.append(message["status"])
            return message if message["status"] == "read" else None

        final = eventually(read, 15, log=system.log)
        assert final["provider_message_id"].startswith("wamid.")
        assert final["delivered_at"] is not None
        assert final["read_at"] >= final["delivered_at"]
        # Watched as it went: never a step back.
        order = ["queued", "sent", "delivered", "read"]
        assert seen == sorted(seen, key=order.index)
    # Every delivery, the customer's and the receipts, was stored and acknowledged (what fails to
    # be stored stays in the stream).
    queue = redis.Redis.from_url(system.settings.redis_url)
    try:
        stream = f"{system.settings.redis_prefix}:inbound"
        eventually(lambda: queue.xlen(stream) == 0 or None, 5, log=system.log)
    finally:
        queue.close()
