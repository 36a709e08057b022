"""Secrets at rest: sealed with the configured keys, and rotated to a new key."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg
import msgspec
import pytest

from omnistream.config import Settings
from omnistream.integrations import service as integrations
from omnistream.security.secrets import new_key, secret_box
from tests.conftest import Tenant
from tests.webhook_helpers import connect_account, phone_id


async def sealed_columns(database: str, tenant: Tenant) -> dict[str, str]:
    conn = await asyncpg.connect(database)
    try:
        account = await conn.fetchrow(
            "SELECT access_token_encrypted FROM integration_accounts WHERE tenant_id = $1", UUID(tenant.id)
        )
        integration = await conn.fetchrow(
            "SELECT app_secret_encrypted FROM channel_integrations WHERE tenant_id = $1", UUID(tenant.id)
        )
    finally:
        await conn.close()
    return {"token": account["access_token_encrypted"], "app_secret": integration["app_secret_encrypted"]}


async def test_rotation_seals_every_secret_with_the_new_key_so_the_old_one_can_go(
    database: str, settings: Settings, db: Any, tenant: Tenant, other_tenant: Tenant
) -> None:
    old_key, key = new_key(), new_key()
    before = msgspec.structs.replace(settings, encryption_keys=old_key)
    numbers = [phone_id(), phone_id()]
    for who, number in zip((tenant, other_tenant), numbers, strict=True):
        await connect_account(
            database, before, who.id, "whatsapp", number, app_secret="s3cret-app", access_token="EAAG-1"
        )
    sealed = await sealed_columns(database, tenant)
    assert "EAAG-1" not in sealed["token"]
    with pytest.raises(ValueError, match="no longer configured"):
        secret_box(key).open(sealed["token"])

    rotating = msgspec.structs.replace(settings, encryption_keys=f"{key},{old_key}")
    assert await integrations.reseal_secrets(db, rotating) == 4  # a token and an app secret, for each tenant

    after = await sealed_columns(database, tenant)
    assert after != sealed
    only_new = secret_box(key)
    assert (only_new.open(after["token"]), only_new.open(after["app_secret"])) == ("EAAG-1", "s3cret-app")
    # The webhooks verify both tenants' deliveries with the new key alone.
    routes = await integrations.route_accounts(
        db, msgspec.structs.replace(settings, encryption_keys=key), "whatsapp", numbers
    )
    assert sorted(r.app_secret for r in routes) == ["s3cret-app", "s3cret-app"]
