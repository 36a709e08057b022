"""Integrations: the tenant's channel settings (app credentials) and accounts (phone numbers,
pages, Instagram accounts, mailboxes), with their secrets sealed at rest.

Other areas use the functions of the first section: webhooks route by `route_accounts` and
`verify_token_known`, delivery sends through `sending_account`, templates manage through
`template_account`.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec

from omnistream.config import Settings
from omnistream.db import Database
from omnistream.integrations import repository
from omnistream.security.secrets import digest


class AccountRoute(msgspec.Struct, frozen=True, kw_only=True):
    """Where a webhook naming an account goes, and the secrets that prove a delivery is genuine."""

    tenant_id: UUID
    account_id: UUID
    external_id: str
    active: bool
    business_account_id: str | None
    app_secret: str | None
    """The tenant's app secret for the channel, else the platform's (Meta signs with the app's)."""
    account_secret: str | None
    """The email webhook's HMAC secret."""


class ProviderAccount(msgspec.Struct, frozen=True, kw_only=True):
    """An account as the workers use it to talk to the provider: with its token in the clear."""

    id: UUID
    channel: str
    external_id: str
    display_name: str
    business_account_id: str | None
    access_token: str | None
    settings: dict[str, Any]
    active: bool


# ---------------------------------------------------------------- for other areas


async def route_accounts(db: Database, settings: Settings, channel: str, external_ids: list[str]) -> list[AccountRoute]:
    """The connected accounts among `external_ids` of `channel`, whichever tenant has them."""
    if not external_ids:
        return []
    async with db.anonymous() as conn:
        rows = await repository.route_accounts(conn, channel, sorted(set(external_ids)))
    box = settings.secrets
    return [
        AccountRoute(
            tenant_id=row["tenant_id"],
            account_id=row["account_id"],
            external_id=row["external_id"],
            active=row["status"] == "active",
            business_account_id=row["business_account_id"],
            app_secret=_open(box, row["app_secret_encrypted"]) or settings.meta_app_secret or None,
            account_secret=_open(box, row["account_secret_encrypted"]),
        )
        for row in rows
    ]


async def verify_token_known(db: Database, settings: Settings, channels: list[str], token: str) -> bool:
    """Is `token` the verify token of the platform's app or of a tenant's integration of one of `channels`?"""
    import hmac

    if settings.meta_verify_token and hmac.compare_digest(settings.meta_verify_token.encode(), token.encode()):
        return True
    async with db.anonymous() as conn:
        return await repository.verify_token_known(conn, channels, digest(token))


async def sending_account(
    conn: Any, settings: Settings, tenant_id: UUID, channel: str, account_id: UUID | None
) -> ProviderAccount | None:
    """The account a conversation's messages go out through (its own, else the channel's default);
    None when there is none. `conn` is a transaction or a tenant read of `tenant_id`."""
    row = await repository.sending_account(conn, tenant_id, channel, account_id)
    return None if row is None else _provider_account(settings, row)


async def template_account(
    conn: Any, settings: Settings, tenant_id: UUID, business_account_id: str | None = None
) -> ProviderAccount | None:
    """The active WhatsApp account whose token manages the templates of `business_account_id`
    (the default account's business account when None)."""
    row = await repository.account_by_business_account(conn, tenant_id, business_account_id)
    return None if row is None else _provider_account(settings, row)


def _provider_account(settings: Settings, row: Any) -> ProviderAccount:
    return ProviderAccount(
        id=row["id"],
        channel=row["channel"],
        external_id=row["external_id"],
        display_name=row["display_name"],
        business_account_id=row["business_account_id"],
        access_token=_open(settings.secrets, row["access_token_encrypted"]),
        settings=dict(row["settings"] or {}),
        active=row["status"] == "active",
    )


def _open(box: Any, sealed: str | None) -> str | None:
    return None if sealed is None else box.open(sealed)
