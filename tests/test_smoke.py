from __future__ import annotations

import re

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


async def test_the_root_and_api_say_where_things_are(client: AsyncTestClient) -> None:
    for path in ("/", "/api"):
        response = await client.get(path)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["links"] == {"docs": "/schema", "openapi": "/schema/openapi.json", "health": "/api/health"}
        assert body["version"]
        for link in body["links"].values():
            assert (await client.get(link)).status_code == 200, link


async def test_the_docs_page_needs_no_internet(client: AsyncTestClient) -> None:
    page = await client.get("/schema")
    assert page.status_code == 200
    assets = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", page.text)
    assert assets, page.text
    assert not [a for a in assets if a.startswith(("http:", "https:", "//"))], assets
    for asset in assets:
        if asset.startswith("/schema/assets/"):
            served = await client.get(asset)
            assert served.status_code == 200, asset
            assert len(served.content) > 100, asset
