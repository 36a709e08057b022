from __future__ import annotations

from litestar.testing import AsyncTestClient

from tests.conftest import Tenant


async def test_health(client: AsyncTestClient) -> None:
    response = await client.get("/api/health")
    assert response.status_code == 200, response.text
    assert response.json()["postgres"] == "ok"
    assert response.headers["x-request-id"]


async def test_me(client: AsyncTestClient, tenant: Tenant) -> None:
    response = await client.get("/api/auth/me", headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert response.json()["email"] == tenant.admin_email
