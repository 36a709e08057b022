"""Integrations: channel settings, connected accounts, and the Meta sign-up and OAuth flows.

No response carries a secret or token: each is described by `<name>_set` and `<name>_hint`
(its last four characters), except the email webhook secret, shown once when its account is made.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec

from omnistream.kit.schema import NO_NUL, NOT_BLANK, Email, Input, Schema, pattern

Channel = Literal["whatsapp", "messenger", "instagram", "email"]
AccountStatus = Literal["active", "disconnected"]

MAX_SETTINGS = 50

Secret = Annotated[str, msgspec.Meta(min_length=1, max_length=4096, pattern=NOT_BLANK)]
Label = Annotated[str, msgspec.Meta(max_length=200, pattern=NO_NUL)]
MetaId = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=64,
        pattern=pattern(r"^[0-9]+$", "must be a Meta id (digits only)"),
        description="An id Meta gave (digits)",
    ),
]
SettingKey = Annotated[
    str, msgspec.Meta(min_length=1, max_length=100, pattern=pattern(r"^[A-Za-z0-9_.-]+$", "must be a setting name"))
]
SettingValue = (
    Annotated[str, msgspec.Meta(max_length=2000, pattern=NO_NUL)]
    | Annotated[int, msgspec.Meta(ge=-(2**53), le=2**53)]
    | Annotated[float, msgspec.Meta(ge=-(2**53), le=2**53)]
    | bool
    | None
)
Settings = Annotated[dict[SettingKey, SettingValue], msgspec.Meta(max_length=MAX_SETTINGS)]


# ---------------------------------------------------------------- channel integrations


class Integration(Schema):
    """A channel's app credentials for this organisation: Meta's app, or the email webhook's."""

    channel: Channel
    enabled: bool
    app_id: str | None
    app_secret_set: bool
    app_secret_hint: str | None
    """The last four characters of the app secret."""
    verify_token_set: bool
    verify_token_hint: str | None
    settings: dict[str, SettingValue]
    created_at: datetime
    updated_at: datetime


class IntegrationList(Schema):
    integrations: list[Integration]


class IntegrationUpsert(Input):
    """Fields left out keep their value (the defaults when the integration is new); a secret set to
    null is cleared."""

    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    app_id: MetaId | msgspec.UnsetType | None = msgspec.UNSET
    app_secret: Secret | msgspec.UnsetType | None = msgspec.UNSET
    verify_token: Secret | msgspec.UnsetType | None = msgspec.UNSET
    """What Meta's webhook verification must name; stored sealed, found by its SHA-256."""
    settings: Settings | msgspec.UnsetType = msgspec.UNSET
    """Replaces the stored settings as a whole."""


# ---------------------------------------------------------------- integration accounts


class SmtpSettings(Input):
    """The mailbox's outgoing server."""

    host: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=253,
            pattern=pattern(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$", "must be a host name or address"),
        ),
    ]
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 587
    username: Annotated[str, msgspec.Meta(min_length=1, max_length=254, pattern=NOT_BLANK)] | None = None
    password: Secret | None = None
    """Stored sealed. On an update, left out (or null) with the same username keeps the stored one."""
    from_address: Email | None = None
    """The sender; the mailbox address when left out."""
    starttls: bool = True
    """Upgrade the connection with STARTTLS (port 465's implicit TLS is used when the port is 465)."""


class SmtpView(Schema):
    host: str
    port: int
    username: str | None
    password_set: bool
    from_address: str
    starttls: bool


class IntegrationAccount(Schema):
    id: UUID
    channel: Channel
    name: str
    external_id: str
    """The WhatsApp phone number id, the Facebook page id, the Instagram account id, or the mailbox address."""
    display_name: str
    business_account_id: str | None
    access_token_set: bool
    access_token_hint: str | None
    webhook_secret_set: bool
    """Email: the inbound webhook's HMAC secret exists (it was shown once, at creation)."""
    is_default: bool
    status: AccountStatus
    smtp: SmtpView | None
    quality: dict[str, str | int] | None
    """WhatsApp: Meta's latest news of the number's quality (`event`: FLAGGED, UNFLAGGED, UPGRADE,
    DOWNGRADE, ...; `current_limit`: the messaging limit tier), from its webhooks."""
    messages_per_second: int | None
    """The rate campaigns send at through this account (None: WhatsApp's standard 80 a second)."""
    created_at: datetime
    updated_at: datetime


class IntegrationAccountCreated(IntegrationAccount):
    webhook_secret: str | None
    """Email accounts: the secret that signs inbound email webhooks. Shown here only, never again."""


class IntegrationAccountList(Schema):
    integration_accounts: list[IntegrationAccount]
    next_cursor: str | None
    total: int


class IntegrationAccountCreate(Input):
    channel: Channel
    external_id: Annotated[str, msgspec.Meta(min_length=1, max_length=254, pattern=NOT_BLANK)]
    """WhatsApp phone number id, page id or Instagram account id (digits); a mailbox address for email."""
    name: Label = ""
    display_name: Label = ""
    business_account_id: MetaId | None = None
    """WhatsApp only: the business account (WABA) of the number."""
    access_token: Secret | None = None
    """Meta channels: the token the account is used with; stored sealed."""
    smtp: SmtpSettings | None = None
    """Email only."""


class IntegrationAccountUpdate(Input):
    name: Label | msgspec.UnsetType = msgspec.UNSET
    display_name: Label | msgspec.UnsetType = msgspec.UNSET
    business_account_id: MetaId | msgspec.UnsetType | None = msgspec.UNSET
    access_token: Secret | msgspec.UnsetType | None = msgspec.UNSET
    """Null clears the token."""
    smtp: SmtpSettings | msgspec.UnsetType | None = msgspec.UNSET
    """Replaces the SMTP settings (null removes them)."""
    status: AccountStatus | msgspec.UnsetType = msgspec.UNSET
    messages_per_second: Annotated[int, msgspec.Meta(ge=1, le=10_000)] | msgspec.UnsetType | None = msgspec.UNSET
    """The rate campaigns send at through this account, for a number Meta allows more (up to 1,000 a
    second on the Cloud API's higher tiers); null: the standard 80 a second."""


class WhatsAppHealth(Schema):
    """What Meta says of the phone number now."""

    account_id: UUID
    phone_number_id: str
    display_phone_number: str | None
    verified_name: str | None
    quality_rating: str | None
    """GREEN, YELLOW, RED or UNKNOWN."""
    messaging_limit_tier: str | None
    name_status: str | None
    code_verification_status: str | None
    throughput_level: str | None


# ---------------------------------------------------------------- WhatsApp Embedded Signup


class EmbeddedSignupConfig(Schema):
    configured: bool
    """False until the platform's Meta app id and Embedded Signup configuration id are set."""
    app_id: str | None
    config_id: str | None
    graph_api_version: str
    missing: list[str]
    """The settings still to set (environment variables) when not configured."""


Code = Annotated[str, msgspec.Meta(min_length=1, max_length=2048, pattern=NOT_BLANK)]
Pin = Annotated[str, msgspec.Meta(pattern=pattern(r"^[0-9]{6}$", "must be six digits"))]


class EmbeddedSignupComplete(Input):
    code: Code
    """The code Embedded Signup's login returned."""
    waba_id: MetaId
    phone_number_id: MetaId
    pin: Pin | None = None
    """The two-step verification PIN to register the number with (a new one is made when left out)."""
    name: Label = ""


# ---------------------------------------------------------------- Instagram and Messenger OAuth


class OAuthConfig(Schema):
    configured: bool
    app_id: str | None
    scopes: list[str]
    graph_api_version: str
    authorize_url: str
    """Facebook Login's dialog; the client adds client_id, redirect_uri, scope and state."""
    redirect_uri: str | None
    """The redirect this organisation configured (the integration's `redirect_uri` setting), if any."""
    missing: list[str]


RedirectUri = Annotated[
    str,
    msgspec.Meta(
        max_length=2000, pattern=pattern(r"^https?://[^\x00-\x20]+$", "must be an http(s) URL without spaces")
    ),
]


class OAuthConnect(Input):
    code: Code
    redirect_uri: RedirectUri | None = None
    """The redirect_uri the login dialog was opened with (Meta requires the same one)."""


class ConnectedPage(Schema):
    page_id: str
    name: str
    account: IntegrationAccount | None
    """None when the page (or its Instagram account) is connected to another organisation."""
    skipped_reason: str | None


class OAuthConnected(Schema):
    connected: list[ConnectedPage]


class PageIds(Input):
    page_ids: Annotated[list[MetaId], msgspec.Meta(min_length=1, max_length=50)]


class PageSubscription(Schema):
    page_id: str
    account_id: UUID
    subscribed: bool


class PageSubscriptions(Schema):
    pages: list[PageSubscription]


# ---------------------------------------------------------------- Messenger persistent menu

MenuTitle = Annotated[str, msgspec.Meta(min_length=1, max_length=30, pattern=NOT_BLANK)]


class PostbackButton(Input, tag="postback", tag_field="type"):
    title: MenuTitle
    payload: Annotated[str, msgspec.Meta(min_length=1, max_length=1000, pattern=NO_NUL)]


class WebUrlButton(Input, tag="web_url", tag_field="type"):
    title: MenuTitle
    url: Annotated[
        str, msgspec.Meta(max_length=2000, pattern=pattern(r"^https?://[^\x00-\x20]+$", "must be an http(s) URL"))
    ]
    webview_height_ratio: Literal["compact", "tall", "full"] | msgspec.UnsetType = msgspec.UNSET
    messenger_extensions: bool | msgspec.UnsetType = msgspec.UNSET


Locale = Annotated[
    str, msgspec.Meta(pattern=pattern(r"^(?:default|[a-z]{2}_[A-Z]{2})$", "must be default or a locale such as en_US"))
]


class MenuLocale(Input, kw_only=True):
    locale: Locale
    composer_input_disabled: bool = False
    call_to_actions: Annotated[list[PostbackButton | WebUrlButton], msgspec.Meta(min_length=1, max_length=20)]
    """Meta takes up to 20 buttons per locale."""


class PersistentMenuUpdate(Input):
    persistent_menu: Annotated[list[MenuLocale], msgspec.Meta(max_length=100)] | None = None
    """One entry per locale, one of them `default`. Empty or null (or `delete`) removes the menu."""
    delete: bool = False


class PersistentMenu(Schema):
    page_id: str
    persistent_menu: list[dict[str, Any]]
    """As Meta holds it; empty when the page has none."""
