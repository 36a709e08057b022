"""Integrations: the tenant's channel settings (app credentials) and accounts (phone numbers,
pages, Instagram accounts, mailboxes), with their secrets sealed at rest.

Other areas use the functions of the first section: webhooks route by `route_accounts` and
`verify_token_known`, delivery sends through `sending_account`, templates manage through
`template_account`.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from omnistream.activity import service as activity
from omnistream.channels.graph import GraphClient, GraphError
from omnistream.config import Settings
from omnistream.db import Database, Savepoint
from omnistream.errors import BadGateway, Conflict, Unprocessable, not_found
from omnistream.integrations import repository
from omnistream.integrations.schemas import (
    ConnectedPage,
    EmbeddedSignupComplete,
    EmbeddedSignupConfig,
    Integration,
    IntegrationAccount,
    IntegrationAccountCreate,
    IntegrationAccountCreated,
    IntegrationAccountList,
    IntegrationAccountUpdate,
    IntegrationList,
    IntegrationUpsert,
    OAuthConfig,
    OAuthConnect,
    OAuthConnected,
    PageIds,
    PageSubscription,
    PageSubscriptions,
    PersistentMenu,
    PersistentMenuUpdate,
    SmtpSettings,
    SmtpView,
    WhatsAppHealth,
)
from omnistream.kit.pagination import ListParams, page_of
from omnistream.security.principal import Actor
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


async def active_account_ids(db: Database, tenant_id: UUID, account_ids: Iterable[UUID]) -> set[UUID]:
    """Which of `account_ids` are the tenant's and connected now (a webhook routed a moment ago,
    by a cached route, is checked again here before it is stored)."""
    wanted = sorted(set(account_ids))
    if not wanted:
        return set()
    async with db.read(tenant_id) as conn:
        return set(await repository.active_account_ids(conn, tenant_id, wanted))


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


# ---------------------------------------------------------------- presenting (never a secret)

HINT_LENGTH = 4
# A hint of a short secret would give away too much of it.
HINT_MIN_LENGTH = 12
ROUTE_KEY = "integration_accounts_route_key"
META_CHANNELS = ("whatsapp", "messenger", "instagram")
PAGE_FIELDS = "messages,messaging_postbacks,messaging_optins,message_deliveries,message_reads,message_echoes"
INSTAGRAM_PAGE_FIELDS = "messages,messaging_postbacks,message_reactions,messaging_seen"
SCOPES = {
    "messenger": ["pages_show_list", "pages_messaging", "pages_manage_metadata", "pages_read_engagement"],
    "instagram": [
        "instagram_basic",
        "instagram_manage_messages",
        "pages_show_list",
        "pages_manage_metadata",
        "pages_read_engagement",
    ],
}
HEALTH_FIELDS = (
    "quality_rating,messaging_limit_tier,name_status,code_verification_status,display_phone_number,"
    "verified_name,throughput"
)


def _hint(plain: str | None) -> str | None:
    if plain is None or len(plain) < HINT_MIN_LENGTH:
        return None
    return plain[-HINT_LENGTH:]


def _opened(settings: Settings, sealed: str | None) -> str | None:
    return _open(settings.secrets, sealed)


def _integration(settings: Settings, row: Any) -> Integration:
    app_secret = _opened(settings, row["app_secret_encrypted"])
    verify_token = _opened(settings, row["verify_token_encrypted"])
    return Integration(
        channel=row["channel"],
        enabled=row["enabled"],
        app_id=row["app_id"],
        app_secret_set=app_secret is not None,
        app_secret_hint=_hint(app_secret),
        verify_token_set=verify_token is not None,
        verify_token_hint=_hint(verify_token),
        settings=dict(row["settings"] or {}),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _smtp_view(stored: dict[str, Any] | None) -> SmtpView | None:
    if not stored:
        return None
    return SmtpView(
        host=stored["host"],
        port=stored["port"],
        username=stored.get("username"),
        password_set=stored.get("password_encrypted") is not None,
        from_address=stored["from_address"],
        starttls=stored["starttls"],
    )


def _account_fields(settings: Settings, row: Any) -> dict[str, Any]:
    token = _opened(settings, row["access_token_encrypted"])
    stored = dict(row["settings"] or {})
    return {
        "id": row["id"],
        "channel": row["channel"],
        "name": row["name"],
        "external_id": row["external_id"],
        "display_name": row["display_name"],
        "business_account_id": row["business_account_id"],
        "access_token_set": token is not None,
        "access_token_hint": _hint(token),
        "webhook_secret_set": row["channel"] == "email" and row["secret_encrypted"] is not None,
        "is_default": row["is_default"],
        "status": row["status"],
        "smtp": _smtp_view(stored.get("smtp")),
        "quality": stored.get("quality"),
        "messages_per_second": stored.get("messages_per_second"),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def _account(settings: Settings, row: Any) -> IntegrationAccount:
    return IntegrationAccount(**_account_fields(settings, row))


def _bad_gateway(exc: GraphError, doing: str) -> BadGateway:
    return BadGateway(
        f"Meta's Graph API refused to {doing}: {exc.text}" + (f" (code {exc.code})" if exc.code is not None else ""),
        provider_error_code=exc.code,
        provider_trace_id=exc.trace_id,
    )


def _taken(channel: str, external_id: str) -> Conflict:
    return Conflict(
        f"this {channel} account ({external_id}) is already connected to another organisation; "
        "it must be disconnected there first",
        field="external_id",
    )


# ---------------------------------------------------------------- channel integrations


async def list_integrations(db: Database, settings: Settings, actor: Actor) -> IntegrationList:
    async with db.read(actor.tenant_id) as conn:
        rows = await repository.list_integrations(conn, actor.tenant_id)
    return IntegrationList(integrations=[_integration(settings, row) for row in rows])


async def get_integration(db: Database, settings: Settings, actor: Actor, channel: str) -> Integration:
    async with db.read(actor.tenant_id) as conn:
        row = await repository.get_integration(conn, actor.tenant_id, channel)
    if row is None:
        raise not_found(f"{channel} integration")
    return _integration(settings, row)


async def upsert_integration(
    db: Database, settings: Settings, actor: Actor, channel: str, data: IntegrationUpsert
) -> Integration:
    box = settings.secrets
    async with db.tenant(actor.tenant_id) as conn:
        await repository.lock_integration(conn, actor.tenant_id, channel)
        current = await repository.get_integration(conn, actor.tenant_id, channel)
        fields: dict[str, Any] = {
            "enabled": True,
            "app_id": None,
            "app_secret_encrypted": None,
            "verify_token_encrypted": None,
            "verify_token_digest": None,
            "settings": {},
        }
        if current is not None:
            fields |= {key: current[key] for key in ("enabled", "app_id", "app_secret_encrypted", "settings")}
            fields["verify_token_encrypted"] = current["verify_token_encrypted"]
            opened = _opened(settings, current["verify_token_encrypted"])
            fields["verify_token_digest"] = None if opened is None else digest(opened)
        changed = []
        for name in ("enabled", "app_id", "settings"):
            value = getattr(data, name)
            if value is not msgspec.UNSET:
                fields[name] = value
                changed.append(name)
        if data.app_secret is not msgspec.UNSET:
            fields["app_secret_encrypted"] = None if data.app_secret is None else box.seal(data.app_secret)
            changed.append("app_secret")
        if data.verify_token is not msgspec.UNSET:
            token = data.verify_token
            fields["verify_token_encrypted"] = None if token is None else box.seal(token)
            fields["verify_token_digest"] = None if token is None else digest(token)
            changed.append("verify_token")
        row = await repository.upsert_integration(conn, actor.tenant_id, channel, updated_by=actor.user_id, **fields)
        await activity.record(
            conn,
            actor,
            "integration.created" if current is None else "integration.updated",
            "integration",
            None,
            channel=channel,
            changed=changed,
        )
        return _integration(settings, row)


async def delete_integration(db: Database, actor: Actor, channel: str) -> None:
    """The channel's accounts stay; webhooks signed with this app's secret are then checked
    against the platform's app secret."""
    async with db.tenant(actor.tenant_id) as conn:
        if not await repository.delete_integration(conn, actor.tenant_id, channel):
            raise not_found(f"{channel} integration")
        await activity.record(conn, actor, "integration.deleted", "integration", None, channel=channel)


# ---------------------------------------------------------------- integration accounts


def _external_id(channel: str, external_id: str) -> str:
    external_id = external_id.strip()
    if channel == "email":
        address = external_id.lower()
        local, at, domain = address.partition("@")
        if not (at and local and "." in domain and not any(c.isspace() for c in address)):
            raise Unprocessable("an email account's external_id is its mailbox address", field="external_id")
        return address
    if not external_id.isascii() or not external_id.isdigit():
        what = {"whatsapp": "phone number id", "messenger": "page id", "instagram": "Instagram account id"}[channel]
        raise Unprocessable(f"a {channel} account's external_id is its {what} (digits)", field="external_id")
    return external_id


def _check_channel_fields(channel: str, business_account_id: Any, access_token: Any, smtp: Any) -> None:
    if business_account_id not in (None, msgspec.UNSET) and channel != "whatsapp":
        raise Unprocessable("only a WhatsApp account has a business_account_id", field="business_account_id")
    if smtp not in (None, msgspec.UNSET) and channel != "email":
        raise Unprocessable("only an email account has SMTP settings", field="smtp")
    if access_token not in (None, msgspec.UNSET) and channel == "email":
        raise Unprocessable("an email account has no access token (its SMTP password is in smtp)", field="access_token")


def _stored_smtp(box: Any, smtp: SmtpSettings, mailbox: str, previous: dict[str, Any] | None) -> dict[str, Any]:
    if smtp.port == 465 and smtp.starttls:
        raise Unprocessable("port 465 speaks TLS from the start: set starttls to false", field="smtp.starttls")
    password_encrypted = None if smtp.password is None else box.seal(smtp.password)
    if password_encrypted is None and previous and previous.get("username") == smtp.username:
        password_encrypted = previous.get("password_encrypted")  # an edit that did not resend the password
    if (smtp.username is None) != (password_encrypted is None):
        raise Unprocessable("an SMTP username and password go together", field="smtp.password")
    return {
        "host": smtp.host.lower(),
        "port": smtp.port,
        "username": smtp.username,
        "password_encrypted": password_encrypted,
        "from_address": (smtp.from_address or mailbox).lower(),
        "starttls": smtp.starttls,
    }


async def _connected_elsewhere(db: Database, tenant_id: UUID, channel: str, external_ids: Iterable[str]) -> set[str]:
    """Which of these provider accounts another organisation has connected."""
    async with db.anonymous() as conn:
        rows = await repository.route_accounts(conn, channel, sorted(set(external_ids)))
    return {row["external_id"] for row in rows if row["tenant_id"] != tenant_id}


async def list_accounts(
    db: Database, settings: Settings, actor: Actor, params: ListParams, *, channel: str | None, status: str | None
) -> IntegrationAccountList:
    async with db.read(actor.tenant_id) as conn:
        rows, total = await repository.list_accounts(conn, actor.tenant_id, params, channel, status)
    accounts, next_cursor = page_of([_account(settings, row) for row in rows], params)
    return IntegrationAccountList(integration_accounts=accounts, next_cursor=next_cursor, total=total)


async def get_account(db: Database, settings: Settings, actor: Actor, account_id: UUID) -> IntegrationAccount:
    async with db.read(actor.tenant_id) as conn:
        row = await repository.get_account(conn, actor.tenant_id, account_id)
    if row is None:
        raise not_found("integration account")
    return _account(settings, row)


async def _insert_account(
    conn: asyncpg.Connection, actor: Actor, channel: str, external_id: str, **fields: Any
) -> UUID:
    """A new account (the channel's default if it is the first); 409 when the provider account is
    connected already, here or elsewhere."""
    await repository.lock_channel_defaults(conn, actor.tenant_id, channel)
    if await repository.account_by_external_id(conn, actor.tenant_id, channel, external_id) is not None:
        raise Conflict(
            f"this {channel} account ({external_id}) is already connected in this organisation", field="external_id"
        )
    try:
        async with Savepoint(conn, "insert_account"):
            return await repository.insert_account(
                conn, actor.tenant_id, channel=channel, external_id=external_id, **fields
            )
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name == ROUTE_KEY:
            raise _taken(channel, external_id) from exc
        raise


async def create_account(
    db: Database, settings: Settings, actor: Actor, data: IntegrationAccountCreate
) -> IntegrationAccountCreated:
    channel = data.channel
    external_id = _external_id(channel, data.external_id)
    _check_channel_fields(channel, data.business_account_id, data.access_token, data.smtp)
    box = settings.secrets
    stored: dict[str, Any] = {}
    webhook_secret = None
    if channel == "email":
        webhook_secret = secrets.token_urlsafe(32)
        if data.smtp is not None:
            stored["smtp"] = _stored_smtp(box, data.smtp, external_id, None)
    async with db.tenant(actor.tenant_id) as conn:
        account_id = await _insert_account(
            conn,
            actor,
            channel,
            external_id,
            name=data.name.strip(),
            display_name=data.display_name.strip() or (external_id if channel == "email" else ""),
            business_account_id=data.business_account_id,
            access_token_encrypted=None if data.access_token is None else box.seal(data.access_token),
            secret_encrypted=None if webhook_secret is None else box.seal(webhook_secret),
            settings=stored,
        )
        await activity.record(
            conn,
            actor,
            "integration_account.created",
            "integration_account",
            account_id,
            channel=channel,
            external_id=external_id,
        )
        row = await repository.get_account(conn, actor.tenant_id, account_id)
    return IntegrationAccountCreated(**_account_fields(settings, row), webhook_secret=webhook_secret)


async def update_account(
    db: Database, settings: Settings, actor: Actor, account_id: UUID, data: IntegrationAccountUpdate
) -> IntegrationAccount:
    box = settings.secrets
    async with db.tenant(actor.tenant_id) as conn:
        row = await repository.lock_account(conn, actor.tenant_id, account_id)
        if row is None:
            raise not_found("integration account")
        channel = row["channel"]
        _check_channel_fields(channel, data.business_account_id, data.access_token, data.smtp)
        fields = {
            key: row[key]
            for key in ("name", "display_name", "business_account_id", "access_token_encrypted", "secret_encrypted")
        }
        fields["status"] = row["status"]
        stored = dict(row["settings"] or {})
        changed = []
        for name in ("name", "display_name"):
            value = getattr(data, name)
            if value is not msgspec.UNSET:
                fields[name] = value.strip()
                changed.append(name)
        if data.business_account_id is not msgspec.UNSET:
            fields["business_account_id"] = data.business_account_id
            changed.append("business_account_id")
        if data.status is not msgspec.UNSET:
            fields["status"] = data.status
            changed.append("status")
        if data.access_token is not msgspec.UNSET:
            token = data.access_token
            fields["access_token_encrypted"] = None if token is None else box.seal(token)
            changed.append("access_token")
        if data.smtp is not msgspec.UNSET:
            if data.smtp is None:
                stored.pop("smtp", None)
            else:
                stored["smtp"] = _stored_smtp(box, data.smtp, row["external_id"], stored.get("smtp"))
            changed.append("smtp")
        if data.messages_per_second is not msgspec.UNSET:
            if data.messages_per_second is None:
                stored.pop("messages_per_second", None)
            else:
                stored["messages_per_second"] = data.messages_per_second
            changed.append("messages_per_second")
        if changed:
            await repository.update_account(conn, actor.tenant_id, account_id, settings=stored, **fields)
            await activity.record(
                conn, actor, "integration_account.updated", "integration_account", account_id, changed=changed
            )
        row = await repository.get_account(conn, actor.tenant_id, account_id)
    return _account(settings, row)


async def set_default_account(db: Database, settings: Settings, actor: Actor, account_id: UUID) -> IntegrationAccount:
    async with db.tenant(actor.tenant_id) as conn:
        row = await repository.lock_account(conn, actor.tenant_id, account_id)
        if row is None:
            raise not_found("integration account")
        if row["status"] != "active":
            raise Unprocessable("a disconnected account cannot be the channel's default", field="id")
        if not row["is_default"]:
            await repository.lock_channel_defaults(conn, actor.tenant_id, row["channel"])
            await repository.move_default(conn, actor.tenant_id, row["channel"], account_id)
            await activity.record(
                conn,
                actor,
                "integration_account.default_set",
                "integration_account",
                account_id,
                channel=row["channel"],
            )
        row = await repository.get_account(conn, actor.tenant_id, account_id)
    return _account(settings, row)


async def delete_account(db: Database, actor: Actor, account_id: UUID) -> None:
    """Its webhooks are no longer routed; when it was the default, the oldest remaining account
    (an active one first) becomes the channel's default."""
    async with db.tenant(actor.tenant_id) as conn:
        row = await repository.lock_account(conn, actor.tenant_id, account_id)
        if row is None:
            raise not_found("integration account")
        await repository.lock_channel_defaults(conn, actor.tenant_id, row["channel"])
        await repository.delete_account(conn, actor.tenant_id, account_id)
        promoted = await repository.promote_oldest(conn, actor.tenant_id, row["channel"]) if row["is_default"] else None
        await activity.record(
            conn,
            actor,
            "integration_account.deleted",
            "integration_account",
            account_id,
            channel=row["channel"],
            external_id=row["external_id"],
            promoted_default=None if promoted is None else str(promoted),
        )


async def whatsapp_health(db: Database, settings: Settings, actor: Actor, account_id: UUID) -> WhatsAppHealth:
    async with db.read(actor.tenant_id) as conn:
        row = await repository.get_account(conn, actor.tenant_id, account_id)
    if row is None:
        raise not_found("integration account")
    if row["channel"] != "whatsapp":
        raise Unprocessable(f"a {row['channel']} account has no WhatsApp health", field="id")
    token = _opened(settings, row["access_token_encrypted"])
    if token is None:
        raise Unprocessable("the account has no access token to ask Meta with", field="access_token")
    try:
        async with GraphClient(settings) as graph:
            answer = await graph.request("GET", row["external_id"], token=token, params={"fields": HEALTH_FIELDS})
    except GraphError as exc:
        raise _bad_gateway(exc, "report on the phone number") from exc
    throughput = answer.get("throughput")

    def text(key: str) -> str | None:
        value = answer.get(key)
        return None if value is None else str(value)

    return WhatsAppHealth(
        account_id=row["id"],
        phone_number_id=row["external_id"],
        display_phone_number=text("display_phone_number"),
        verified_name=text("verified_name"),
        quality_rating=text("quality_rating"),
        messaging_limit_tier=text("messaging_limit_tier"),
        name_status=text("name_status"),
        code_verification_status=text("code_verification_status"),
        throughput_level=str(throughput["level"]) if isinstance(throughput, dict) and "level" in throughput else None,
    )


# ---------------------------------------------------------------- WhatsApp Embedded Signup


def _signup_missing(settings: Settings) -> list[str]:
    needed = {
        "OMNISTREAM_META_APP_ID": settings.meta_app_id,
        "OMNISTREAM_META_APP_SECRET": settings.meta_app_secret,
        "OMNISTREAM_META_EMBEDDED_SIGNUP_CONFIG_ID": settings.meta_embedded_signup_config_id,
    }
    return [name for name, value in needed.items() if not value]


def embedded_signup_config(settings: Settings) -> EmbeddedSignupConfig:
    missing = _signup_missing(settings)
    return EmbeddedSignupConfig(
        configured=not missing,
        app_id=settings.meta_app_id or None,
        config_id=settings.meta_embedded_signup_config_id or None,
        graph_api_version=settings.graph_api_version,
        missing=missing,
    )


async def _upsert_connected(
    conn: asyncpg.Connection,
    actor: Actor,
    settings: Settings,
    channel: str,
    external_id: str,
    *,
    display_name: str,
    token: str,
    business_account_id: str | None = None,
    secret: str | None = None,
    extra_settings: dict[str, Any] | None = None,
    name: str = "",
) -> UUID:
    """The account a sign-up or login connected: made, or (connected here before) given its new
    token and made active again."""
    box = settings.secrets
    await repository.lock_channel_defaults(conn, actor.tenant_id, channel)
    existing = await repository.account_by_external_id(conn, actor.tenant_id, channel, external_id)
    if existing is None:
        return await _insert_account(
            conn,
            actor,
            channel,
            external_id,
            name=name or display_name,
            display_name=display_name,
            business_account_id=business_account_id,
            access_token_encrypted=box.seal(token),
            secret_encrypted=None if secret is None else box.seal(secret),
            settings=extra_settings or {},
        )
    await repository.update_account(
        conn,
        actor.tenant_id,
        existing["id"],
        name=name or existing["name"] or display_name,
        display_name=display_name or existing["display_name"],
        business_account_id=business_account_id or existing["business_account_id"],
        access_token_encrypted=box.seal(token),
        secret_encrypted=existing["secret_encrypted"] if secret is None else box.seal(secret),
        settings={**dict(existing["settings"] or {}), **(extra_settings or {})},
        status="active",
    )
    return existing["id"]


async def complete_embedded_signup(
    db: Database, settings: Settings, actor: Actor, data: EmbeddedSignupComplete
) -> IntegrationAccount:
    """Exchange the code, register the number, subscribe the app to its business account, then
    store the account; nothing is stored unless every call to Meta succeeded."""
    missing = _signup_missing(settings)
    if missing:
        raise Unprocessable(f"Embedded Signup is not configured: set {', '.join(missing)}")
    if await _connected_elsewhere(db, actor.tenant_id, "whatsapp", [data.phone_number_id]):
        raise _taken("whatsapp", data.phone_number_id)
    pin = data.pin or f"{secrets.randbelow(10**6):06d}"
    async with GraphClient(settings) as graph:
        try:
            exchanged = await graph.request(
                "GET",
                "oauth/access_token",
                params={
                    "client_id": settings.meta_app_id,
                    "client_secret": settings.meta_app_secret,
                    "code": data.code,
                },
            )
            token = str(exchanged.get("access_token") or "")
            if not token:
                raise GraphError(502, "the code exchange gave no access token")
            await graph.request(
                "POST",
                f"{data.phone_number_id}/register",
                token=token,
                json={"messaging_product": "whatsapp", "pin": pin},
            )
            await graph.request("POST", f"{data.waba_id}/subscribed_apps", token=token)
            number = await graph.request(
                "GET", data.phone_number_id, token=token, params={"fields": "display_phone_number,verified_name"}
            )
        except GraphError as exc:
            raise _bad_gateway(exc, "complete the Embedded Signup") from exc
    display_name = str(number.get("display_phone_number") or "")
    async with db.tenant(actor.tenant_id) as conn:
        account_id = await _upsert_connected(
            conn,
            actor,
            settings,
            "whatsapp",
            data.phone_number_id,
            display_name=display_name,
            token=token,
            business_account_id=data.waba_id,
            secret=pin,
            name=data.name.strip() or str(number.get("verified_name") or ""),
        )
        await activity.record(
            conn,
            actor,
            "integration_account.connected",
            "integration_account",
            account_id,
            channel="whatsapp",
            external_id=data.phone_number_id,
            business_account_id=data.waba_id,
            via="embedded_signup",
        )
        row = await repository.get_account(conn, actor.tenant_id, account_id)
    return _account(settings, row)


# ---------------------------------------------------------------- Instagram and Messenger OAuth


async def _app_credentials(db: Database, settings: Settings, actor: Actor, channel: str) -> tuple[str, str, Any]:
    """The Meta app a login is made with: the organisation's own when it set one for the channel,
    else the platform's; and the organisation's integration settings."""
    async with db.read(actor.tenant_id) as conn:
        row = await repository.get_integration(conn, actor.tenant_id, channel)
    own_settings = dict(row["settings"] or {}) if row is not None else {}
    if row is not None and row["app_id"] and row["app_secret_encrypted"]:
        return row["app_id"], settings.secrets.open(row["app_secret_encrypted"]), own_settings
    return settings.meta_app_id, settings.meta_app_secret, own_settings


def _oauth_missing(app_id: str, app_secret: str) -> list[str]:
    return [name for name, value in (("app_id", app_id), ("app_secret", app_secret)) if not value]


async def oauth_config(db: Database, settings: Settings, actor: Actor, channel: str) -> OAuthConfig:
    app_id, app_secret, own = await _app_credentials(db, settings, actor, channel)
    missing = _oauth_missing(app_id, app_secret)
    redirect = own.get("redirect_uri")
    return OAuthConfig(
        configured=not missing,
        app_id=app_id or None,
        scopes=SCOPES[channel],
        graph_api_version=settings.graph_api_version,
        authorize_url=f"https://www.facebook.com/{settings.graph_api_version}/dialog/oauth",
        redirect_uri=redirect if isinstance(redirect, str) and redirect else None,
        missing=missing,
    )


async def oauth_connect(
    db: Database, settings: Settings, actor: Actor, channel: str, data: OAuthConnect
) -> OAuthConnected:
    """Log in with the code, take a long-lived token, and connect each page the login granted (for
    Instagram, each page's Instagram professional account) with the page's token, subscribing the
    app to each page's webhooks. Nothing is stored unless every call to Meta succeeded."""
    app_id, app_secret, own = await _app_credentials(db, settings, actor, channel)
    if _oauth_missing(app_id, app_secret):
        raise Unprocessable(
            f"no Meta app for {channel}: set app_id and app_secret with PUT /api/integrations/{channel} "
            "(or the platform's OMNISTREAM_META_APP_ID and OMNISTREAM_META_APP_SECRET)"
        )
    redirect_uri = data.redirect_uri or own.get("redirect_uri")
    credentials = {"client_id": app_id, "client_secret": app_secret}
    fields = "id,name,access_token" + (
        ",instagram_business_account{id,username,name}" if channel == "instagram" else ""
    )
    async with GraphClient(settings) as graph:
        try:
            code_params = {**credentials, "code": data.code}
            if isinstance(redirect_uri, str) and redirect_uri:
                code_params["redirect_uri"] = redirect_uri
            short = await graph.request("GET", "oauth/access_token", params=code_params)
            long = await graph.request(
                "GET",
                "oauth/access_token",
                params={**credentials, "grant_type": "fb_exchange_token", "fb_exchange_token": short["access_token"]},
            )
            pages = await graph.request("GET", "me/accounts", token=long["access_token"], params={"fields": fields})
        except (GraphError, KeyError) as exc:
            raise _bad_gateway(
                exc if isinstance(exc, GraphError) else GraphError(502, "the answer lacked an access token"),
                "log in",
            ) from exc
        found = _granted(channel, pages.get("data"))
        if not found:
            what = "a page with an Instagram professional account" if channel == "instagram" else "a Facebook page"
            raise Unprocessable(f"the login granted no {what}: grant one in the login dialog")
        taken = await _connected_elsewhere(db, actor.tenant_id, channel, [item["external_id"] for item in found])
        if len(taken) == len(found):
            item = found[0]
            raise _taken(channel, item["external_id"])
        subscribed_fields = INSTAGRAM_PAGE_FIELDS if channel == "instagram" else PAGE_FIELDS
        try:
            for item in found:
                if item["external_id"] not in taken:
                    await graph.request(
                        "POST",
                        f"{item['page_id']}/subscribed_apps",
                        token=item["token"],
                        params={"subscribed_fields": subscribed_fields},
                    )
        except GraphError as exc:
            raise _bad_gateway(exc, "subscribe the app to the page") from exc
    connected: list[ConnectedPage] = []
    async with db.tenant(actor.tenant_id) as conn:
        for item in found:
            if item["external_id"] in taken:
                connected.append(
                    ConnectedPage(
                        page_id=item["page_id"],
                        name=item["name"],
                        account=None,
                        skipped_reason="connected to another organisation",
                    )
                )
                continue
            try:
                account_id = await _upsert_connected(
                    conn,
                    actor,
                    settings,
                    channel,
                    item["external_id"],
                    display_name=item["name"],
                    token=item["token"],
                    extra_settings={"page_id": item["page_id"]} if channel == "instagram" else None,
                )
            except Conflict:
                # Connected elsewhere between the check and now: reported like the others.
                connected.append(
                    ConnectedPage(
                        page_id=item["page_id"],
                        name=item["name"],
                        account=None,
                        skipped_reason="connected to another organisation",
                    )
                )
                continue
            await activity.record(
                conn,
                actor,
                "integration_account.connected",
                "integration_account",
                account_id,
                channel=channel,
                external_id=item["external_id"],
                via="oauth",
            )
            row = await repository.get_account(conn, actor.tenant_id, account_id)
            connected.append(
                ConnectedPage(
                    page_id=item["page_id"], name=item["name"], account=_account(settings, row), skipped_reason=None
                )
            )
    return OAuthConnected(connected=connected)


def _granted(channel: str, data: Any) -> list[dict[str, str]]:
    """The accounts the login's pages give: the page itself, or its Instagram account."""
    found = []
    for page in data if isinstance(data, list) else []:
        if not isinstance(page, dict) or not page.get("id") or not page.get("access_token"):
            continue
        page_id, page_name = str(page["id"]), str(page.get("name") or "")
        if channel == "messenger":
            found.append({"page_id": page_id, "external_id": page_id, "name": page_name, "token": page["access_token"]})
            continue
        instagram = page.get("instagram_business_account")
        if isinstance(instagram, dict) and instagram.get("id"):
            found.append(
                {
                    "page_id": page_id,
                    "external_id": str(instagram["id"]),
                    "name": str(instagram.get("username") or instagram.get("name") or page_name),
                    "token": page["access_token"],
                }
            )
    return found


# ---------------------------------------------------------------- Messenger pages


async def _page(conn: Any, settings: Settings, tenant_id: UUID, page_id: str) -> tuple[Any, str]:
    """This organisation's Messenger account of a page, and its page token."""
    row = await repository.account_by_external_id(conn, tenant_id, "messenger", page_id)
    if row is None:
        raise not_found(f"Messenger page {page_id}")
    token = _opened(settings, row["access_token_encrypted"])
    if token is None:
        raise Unprocessable(f"Messenger page {page_id} has no page access token: connect it again", field="page_id")
    return row, token


async def subscribe_pages(db: Database, settings: Settings, actor: Actor, data: PageIds) -> PageSubscriptions:
    """Subscribe the app to the webhooks of pages connected here (again: a disconnected page
    becomes active). All pages or none are recorded."""
    page_ids = list(dict.fromkeys(data.page_ids))
    async with db.read(actor.tenant_id) as conn:
        pages = [await _page(conn, settings, actor.tenant_id, page_id) for page_id in page_ids]
    try:
        async with GraphClient(settings) as graph:
            for row, token in pages:
                await graph.request(
                    "POST",
                    f"{row['external_id']}/subscribed_apps",
                    token=token,
                    params={"subscribed_fields": PAGE_FIELDS},
                )
    except GraphError as exc:
        raise _bad_gateway(exc, "subscribe the app to the page") from exc
    result = []
    async with db.tenant(actor.tenant_id) as conn:
        for row, _ in pages:
            if not await repository.set_account_status(conn, actor.tenant_id, row["id"], "active"):
                raise not_found(f"Messenger page {row['external_id']}")
            await activity.record(
                conn,
                actor,
                "integration_account.subscribed",
                "integration_account",
                row["id"],
                channel="messenger",
                external_id=row["external_id"],
            )
            result.append(PageSubscription(page_id=row["external_id"], account_id=row["id"], subscribed=True))
    return PageSubscriptions(pages=result)


async def disconnect_page(db: Database, settings: Settings, actor: Actor, page_id: str) -> IntegrationAccount:
    """Unsubscribe the app from the page's webhooks and mark its account disconnected (its
    webhooks are then ignored); the account and its conversations stay."""
    async with db.read(actor.tenant_id) as conn:
        row, token = await _page(conn, settings, actor.tenant_id, page_id)
    try:
        async with GraphClient(settings) as graph:
            await graph.request("DELETE", f"{page_id}/subscribed_apps", token=token)
    except GraphError as exc:
        raise _bad_gateway(exc, "unsubscribe the app from the page") from exc
    async with db.tenant(actor.tenant_id) as conn:
        if not await repository.set_account_status(conn, actor.tenant_id, row["id"], "disconnected"):
            raise not_found(f"Messenger page {page_id}")
        await activity.record(
            conn,
            actor,
            "integration_account.disconnected",
            "integration_account",
            row["id"],
            channel="messenger",
            external_id=page_id,
        )
        row = await repository.get_account(conn, actor.tenant_id, row["id"])
    return _account(settings, row)


async def get_persistent_menu(db: Database, settings: Settings, actor: Actor, page_id: str) -> PersistentMenu:
    async with db.read(actor.tenant_id) as conn:
        _, token = await _page(conn, settings, actor.tenant_id, page_id)
    try:
        async with GraphClient(settings) as graph:
            answer = await graph.request(
                "GET", "me/messenger_profile", token=token, params={"fields": "persistent_menu"}
            )
    except GraphError as exc:
        raise _bad_gateway(exc, "read the persistent menu") from exc
    menu: list[dict[str, Any]] = []
    for entry in answer.get("data") or []:
        if isinstance(entry, dict) and isinstance(entry.get("persistent_menu"), list):
            menu = [item for item in entry["persistent_menu"] if isinstance(item, dict)]
    return PersistentMenu(page_id=page_id, persistent_menu=menu)


async def set_persistent_menu(
    db: Database, settings: Settings, actor: Actor, page_id: str, data: PersistentMenuUpdate
) -> PersistentMenu:
    removing = data.delete or not data.persistent_menu
    menu: list[dict[str, Any]] = []
    if not removing:
        assert data.persistent_menu is not None
        locales = [entry.locale for entry in data.persistent_menu]
        if "default" not in locales:
            raise Unprocessable("the menu needs an entry for the locale default", field="persistent_menu")
        repeated = sorted({locale for locale in locales if locales.count(locale) > 1})
        if repeated:
            raise Unprocessable(f"each locale has one entry; repeated: {', '.join(repeated)}", field="persistent_menu")
        menu = msgspec.to_builtins(data.persistent_menu)
    async with db.read(actor.tenant_id) as conn:
        row, token = await _page(conn, settings, actor.tenant_id, page_id)
    try:
        async with GraphClient(settings) as graph:
            if removing:
                await graph.request("DELETE", "me/messenger_profile", token=token, json={"fields": ["persistent_menu"]})
            else:
                await graph.request("POST", "me/messenger_profile", token=token, json={"persistent_menu": menu})
    except GraphError as exc:
        raise _bad_gateway(exc, "delete the persistent menu" if removing else "set the persistent menu") from exc
    async with db.tenant(actor.tenant_id) as conn:
        await activity.record(
            conn,
            actor,
            "integration_account.menu_deleted" if removing else "integration_account.menu_set",
            "integration_account",
            row["id"],
            page_id=page_id,
            locales=[entry["locale"] for entry in menu],
        )
    return PersistentMenu(page_id=page_id, persistent_menu=menu)


# ---------------------------------------------------------------- key rotation


async def reseal_secrets(db: Database, settings: Settings) -> int:
    """Seal every stored secret again with the first of OMNISTREAM_ENCRYPTION_KEYS, one transaction
    per tenant; the number of secrets sealed again. Run after putting a new key first; the old key
    can go once it has finished."""
    box = settings.secrets
    async with db.anonymous() as conn:
        tenant_ids = await repository.tenants_with_secrets(conn)
    count = 0
    for tenant_id in tenant_ids:
        async with db.tenant(tenant_id) as conn:
            for row in await repository.sealed_integrations(conn, tenant_id):
                app_secret, verify_token = (
                    _resealed(box, row[k]) for k in ("app_secret_encrypted", "verify_token_encrypted")
                )
                await repository.reseal_integration(
                    conn,
                    tenant_id,
                    row["channel"],
                    app_secret_encrypted=app_secret,
                    verify_token_encrypted=verify_token,
                )
                count += (app_secret is not None) + (verify_token is not None)
            for row in await repository.sealed_accounts(conn, tenant_id):
                account_settings, in_settings = _resealed_within(box, dict(row["settings"] or {}))
                token, secret = (_resealed(box, row[k]) for k in ("access_token_encrypted", "secret_encrypted"))
                await repository.reseal_account(
                    conn,
                    tenant_id,
                    row["id"],
                    access_token_encrypted=token,
                    secret_encrypted=secret,
                    settings=account_settings,
                )
                count += (token is not None) + (secret is not None) + in_settings
    return count


def _resealed(box: Any, sealed: str | None) -> str | None:
    return None if sealed is None else box.reseal(sealed)


def _resealed_within(box: Any, value: Any) -> tuple[Any, int]:
    """`value` with every `*_encrypted` string in it sealed again (an account's SMTP password)."""
    if isinstance(value, dict):
        count, resealed = 0, {}
        for key, item in value.items():
            if key.endswith("_encrypted") and isinstance(item, str):
                resealed[key], count = box.reseal(item), count + 1
            else:
                resealed[key], inner = _resealed_within(box, item)
                count += inner
        return resealed, count
    return value, 0


# ---------------------------------------------------------------- Meta's news (webhooks)


async def record_phone_quality(db: Database, tenant_id: UUID, business_account_id: str, data: Any) -> int:
    """A `phone_number_quality_update`: the number's rating event and current messaging limit, on
    its account's `settings.quality` (what GET /whatsapp-health asks Meta for, as Meta last said it)."""
    if not isinstance(data, dict):
        return 0
    digits = "".join(ch for ch in str(data.get("display_phone_number") or "") if ch.isdigit())
    if not digits:
        return 0
    quality = {
        key: data[key] for key in ("event", "current_limit", "old_limit", "max_daily_conversation_per_phone")
        if isinstance(data.get(key), str | int) and not isinstance(data.get(key), bool)
    }  # fmt: skip
    async with db.tenant(tenant_id) as conn:
        return await repository.record_phone_quality(conn, tenant_id, business_account_id, digits, quality)
