"""The system as the README starts it (`omnistream dev`: the API and a worker, here on the test's
database), used over HTTP as a tenant would: a rule made through the API acts on the next message
within a second, and its run is listed with its result."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from omnistream.config import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def system(settings: Settings, database: str, tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
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
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = (tmp_path / "dev.log").open("wb")
    dev = subprocess.Popen(
        [sys.executable, "-m", "omnistream.cli", "dev", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert dev.poll() is None, (tmp_path / "dev.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "dev.log").read_text()
            time.sleep(0.2)
        yield base, env
        dev.send_signal(signal.SIGTERM)
        assert dev.wait(30) == 0, (tmp_path / "dev.log").read_text()
    finally:
        if dev.poll() is None:
            dev.kill()
            dev.wait(10)
        log.close()


def test_a_rule_made_over_http_acts_on_the_next_message_within_a_second(system: tuple[str, dict[str, str]]) -> None:
    base, env = system
    with httpx.Client(base_url=base, timeout=10) as http:
        registered = http.post(
            "/api/auth/register",
            json={"organization_name": "E2E Co", "name": "Ada", "email": "ada@e2e.test", "password": "a long password"},
        )
        assert registered.status_code == 201, registered.text
        slug = registered.json()["agent"]["tenant"]["slug"]
        auth = {"authorization": f"Bearer {registered.json()['access_token']}"}
        http.cookies.clear()
        rule = http.post(
            "/api/automation-rules",
            json={
                "name": "Refunds",
                "trigger_type": "message_received_inbound",
                "conditions": {"message_contains_any": ["refund"]},
                "actions": [
                    {"type": "add_tags", "tags": ["refund"]},
                    {"type": "add_note", "text": "asked for a refund"},
                ],
            },
            headers=auth,
        )
        assert rule.status_code == 201, rule.text

        sent = subprocess.run(
            [
                sys.executable,
                "-m",
                "omnistream.cli",
                "inbound",
                "--tenant",
                slug,
                "--from",
                "+628123456789",
                "--name",
                "Dewi",
                "--text",
                "Hi, I want a refund please",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert sent.returncode == 0, sent.stdout + sent.stderr

        deadline = time.monotonic() + 10
        while not (runs := http.get("/api/automation-runs", headers=auth).json()["runs"]):
            assert time.monotonic() < deadline, "no run within 10 seconds"
            time.sleep(0.05)
        [run] = runs
        assert (run["rule_id"], run["matched"], run["executed"]) == (rule.json()["id"], True, True)
        assert run["result"]["outcome"] == "executed"
        event = http.get(f"/api/automation-events/{run['event_id']}", headers=auth).json()
        waited = datetime.fromisoformat(run["created_at"]) - datetime.fromisoformat(event["created_at"])
        assert waited.total_seconds() < 1, waited

        conversation = http.get(f"/api/conversations/{run['conversation_id']}", headers=auth).json()
        assert conversation["tags"] == ["refund"]
        metrics = http.get("/metrics").text
        assert 'omnistream_automation_events_done_total{event_type="message_received_inbound"}' in metrics, metrics[
            :2000
        ]
