"""What operators and generic HTTP tooling meet: HEAD and OPTIONS, missing bodies, outages."""

from __future__ import annotations

import socket

import structlog.testing
from litestar.testing import AsyncTestClient

from omnistream.config import Settings
from omnistream.security.rate_limits import LoginThrottle
from tests.conftest import PASSWORD, Tenant, problem


async def test_head_on_health_answers_like_get(client: AsyncTestClient) -> None:
    response = await client.head("/api/health")
    assert response.status_code == 200
    assert response.content == b""


async def test_options_lists_methods_without_authentication(client: AsyncTestClient) -> None:
    response = await client.options("/api/agents")
    assert response.status_code == 204
    assert "POST" in response.headers["allow"]


async def test_a_missing_body_is_named_plainly(client: AsyncTestClient) -> None:
    body = problem(await client.post("/api/auth/login", content=b""), 400)
    assert body["errors"][0]["message"] == "a JSON request body is required"


async def test_public_working_hours_with_an_impossible_slug_is_404(client: AsyncTestClient) -> None:
    problem(await client.get("/api/public/working-hours/%00bad"), 404)


async def test_redis_down_during_login_is_503_not_500(
    client: AsyncTestClient, tenant: Tenant, settings: Settings
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]  # nothing listens here once the socket closes
    client.app.state.throttle = LoginThrottle(
        f"redis://127.0.0.1:{dead_port}/0",
        settings.redis_prefix,
        per_ip=20,
        per_ip_and_email=5,
        slow_after_per_email=50,
        slowdown_seconds=1,
        window_seconds=60,
    )
    response = await client.post("/api/auth/login", json={"email": tenant.admin_email, "password": PASSWORD})
    body = problem(response, 503)
    assert response.headers["retry-after"] == "5"
    assert "unavailable" in body["detail"]


async def test_a_refused_request_is_logged_with_its_reason(client: AsyncTestClient) -> None:
    with structlog.testing.capture_logs() as logs:
        assert (await client.get("/api/conversations", headers={"x-api-key": "osk_nope"})).status_code == 401
        assert (await client.get("/api/conversations?page=2")).status_code == 401
    refused = [line for line in logs if line["event"] == "authentication refused"]
    assert [(r["method"], r["path"], r["client"]) for r in refused] == [("GET", "/api/conversations", None)] * 2
    assert refused[0]["reason"] == "invalid, expired or revoked API key"
    assert refused[1]["reason"]
