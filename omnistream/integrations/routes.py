from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from litestar import Controller, delete, get, patch, post, put
from litestar.params import FromPath, JSONBody, PathParameter, QueryParameter

from omnistream.integrations import service
from omnistream.integrations.schemas import (
    AccountStatus,
    Channel,
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
    PageSubscriptions,
    PersistentMenu,
    PersistentMenuUpdate,
    WhatsAppHealth,
)
from omnistream.kit.deps import DB, AppSettings, CurrentActor, Paging
from omnistream.kit.openapi import ERRORS
from omnistream.kit.schema import Message, pattern
from omnistream.security.guards import access

MANAGE = access("admin", "integrations.manage")
CALLS_META = {**MANAGE, ERRORS: (502,)}
PageId = Annotated[
    str,
    PathParameter(
        min_length=1,
        max_length=64,
        pattern=pattern(r"^[0-9]+$", "must be a Facebook page id (digits)"),
        description="The Facebook page id",
    ),
]
OAuthChannel = Literal["instagram", "messenger"]


class IntegrationController(Controller):
    path = "/api/integrations"
    tags = ["Integrations"]

    @get(operation_id="listIntegrations", summary="List all channel integrations", opt=MANAGE)
    async def list_integrations(self, db: DB, settings: AppSettings, actor: CurrentActor) -> IntegrationList:
        return await service.list_integrations(db, settings, actor)

    @get("/{channel:str}", operation_id="getIntegration", summary="Get a single integration by channel", opt=MANAGE)
    async def get_integration(
        self, db: DB, settings: AppSettings, actor: CurrentActor, channel: FromPath[Channel]
    ) -> Integration:
        return await service.get_integration(db, settings, actor, channel)

    @put(
        "/{channel:str}",
        operation_id="upsertIntegration",
        summary="Create or update an integration (upsert)",
        opt=MANAGE,
        description="Channel: whatsapp, messenger, instagram or email. The app secret and verify token are "
        "stored sealed and never returned (only whether they are set, and their last four characters). A field "
        "left out keeps its value; a secret set to null is cleared.",
    )
    async def upsert_integration(
        self,
        db: DB,
        settings: AppSettings,
        actor: CurrentActor,
        channel: FromPath[Channel],
        data: JSONBody[IntegrationUpsert],
    ) -> Integration:
        return await service.upsert_integration(db, settings, actor, channel, data)

    @delete(
        "/{channel:str}",
        operation_id="deleteIntegration",
        summary="Delete an integration",
        opt=MANAGE,
        status_code=200,
        description="The channel's accounts stay connected.",
    )
    async def delete_integration(self, db: DB, actor: CurrentActor, channel: FromPath[Channel]) -> Message:
        await service.delete_integration(db, actor, channel)
        return Message(message="integration deleted", id=channel)

    # ------------------------------------------------------------ WhatsApp Embedded Signup

    @get(
        "/whatsapp/embedded-signup/config",
        operation_id="getWhatsAppEmbeddedSignupConfig",
        summary="Get WhatsApp Embedded Signup config",
        opt=MANAGE,
        description="`configured` is false (and `missing` names the settings) until the platform's Meta app "
        "and Embedded Signup configuration are set.",
    )
    async def embedded_signup_config(self, settings: AppSettings, actor: CurrentActor) -> EmbeddedSignupConfig:
        return service.embedded_signup_config(settings)

    @post(
        "/whatsapp/embedded-signup",
        operation_id="completeWhatsAppEmbeddedSignup",
        summary="Complete WhatsApp Embedded Signup",
        opt=CALLS_META,
        status_code=200,
        description="Exchanges the code for a token, registers the phone number, subscribes the app to the "
        "business account and connects the number (again, if it was connected here before). Any refusal by "
        "Meta is a 502 and nothing is stored; 409 when another organisation has the number connected.",
    )
    async def complete_embedded_signup(
        self, db: DB, settings: AppSettings, actor: CurrentActor, data: JSONBody[EmbeddedSignupComplete]
    ) -> IntegrationAccount:
        return await service.complete_embedded_signup(db, settings, actor, data)

    # ------------------------------------------------------------ Instagram and Messenger OAuth

    @get(
        "/instagram/oauth/config",
        operation_id="getInstagramOAuthConfig",
        summary="Get Instagram OAuth app config",
        opt=MANAGE,
    )
    async def instagram_oauth_config(self, db: DB, settings: AppSettings, actor: CurrentActor) -> OAuthConfig:
        return await service.oauth_config(db, settings, actor, "instagram")

    @post(
        "/instagram/oauth/connect",
        operation_id="connectInstagramOAuth",
        summary="Connect Instagram account via OAuth",
        opt=CALLS_META,
        status_code=200,
        description="Connects the Instagram professional account of each page the login granted, with the "
        "page's token, and subscribes the app to each page. A page another organisation has connected is "
        "listed with a `skipped_reason` (409 when that is every page).",
    )
    async def instagram_oauth_connect(
        self, db: DB, settings: AppSettings, actor: CurrentActor, data: JSONBody[OAuthConnect]
    ) -> OAuthConnected:
        return await service.oauth_connect(db, settings, actor, "instagram", data)

    @get(
        "/messenger/oauth/config",
        operation_id="getMessengerOAuthConfig",
        summary="Get Messenger OAuth app config",
        opt=MANAGE,
    )
    async def messenger_oauth_config(self, db: DB, settings: AppSettings, actor: CurrentActor) -> OAuthConfig:
        return await service.oauth_config(db, settings, actor, "messenger")

    @post(
        "/messenger/oauth/connect",
        operation_id="connectMessengerOAuth",
        summary="Connect Messenger via Facebook Login OAuth",
        opt=CALLS_META,
        status_code=200,
        description="Connects each page the login granted, with its page token, and subscribes the app to "
        "each page. A page another organisation has connected is listed with a `skipped_reason` (409 when "
        "that is every page).",
    )
    async def messenger_oauth_connect(
        self, db: DB, settings: AppSettings, actor: CurrentActor, data: JSONBody[OAuthConnect]
    ) -> OAuthConnected:
        return await service.oauth_connect(db, settings, actor, "messenger", data)

    # ------------------------------------------------------------ Messenger pages

    @post(
        "/messenger/pages/subscribe",
        operation_id="subscribeMessengerPages",
        summary="Subscribe selected Facebook Pages to Messenger webhooks",
        opt={**MANAGE, ERRORS: (404, 502)},
        status_code=200,
        description="Pages connected here only (404 naming one that is not); a disconnected page becomes active.",
    )
    async def subscribe_pages(
        self, db: DB, settings: AppSettings, actor: CurrentActor, data: JSONBody[PageIds]
    ) -> PageSubscriptions:
        return await service.subscribe_pages(db, settings, actor, data)

    @post(
        "/messenger/pages/{page_id:str}/disconnect",
        operation_id="disconnectMessengerPage",
        summary="Disconnect a Messenger page",
        opt=CALLS_META,
        status_code=200,
        description="Unsubscribes the app from the page's webhooks and marks its account disconnected.",
    )
    async def disconnect_page(
        self, db: DB, settings: AppSettings, actor: CurrentActor, page_id: PageId
    ) -> IntegrationAccount:
        return await service.disconnect_page(db, settings, actor, page_id)

    @get(
        "/messenger/pages/{page_id:str}/persistent-menu",
        operation_id="getMessengerPersistentMenu",
        summary="Get Messenger persistent menu",
        opt=CALLS_META,
    )
    async def get_persistent_menu(
        self, db: DB, settings: AppSettings, actor: CurrentActor, page_id: PageId
    ) -> PersistentMenu:
        return await service.get_persistent_menu(db, settings, actor, page_id)

    @post(
        "/messenger/pages/{page_id:str}/persistent-menu",
        operation_id="setMessengerPersistentMenu",
        summary="Set or delete Messenger persistent menu",
        opt=CALLS_META,
        status_code=200,
        description="`persistent_menu` sets the menu (one entry per locale, one of them `default`, up to 20 "
        "postback or web_url buttons each); `delete: true`, or an empty menu, removes it.",
    )
    async def set_persistent_menu(
        self,
        db: DB,
        settings: AppSettings,
        actor: CurrentActor,
        page_id: PageId,
        data: JSONBody[PersistentMenuUpdate],
    ) -> PersistentMenu:
        return await service.set_persistent_menu(db, settings, actor, page_id, data)


class IntegrationAccountController(Controller):
    path = "/api/integration-accounts"
    tags = ["Integrations"]

    @get(operation_id="listIntegrationAccounts", summary="List integration accounts", opt=MANAGE)
    async def list_accounts(
        self,
        db: DB,
        settings: AppSettings,
        actor: CurrentActor,
        params: Paging,
        channel: Annotated[Channel | None, QueryParameter(description="Only this channel's accounts")] = None,
        status: Annotated[AccountStatus | None, QueryParameter(description="Only accounts in this status")] = None,
    ) -> IntegrationAccountList:
        return await service.list_accounts(db, settings, actor, params, channel=channel, status=status)

    @post(
        operation_id="createIntegrationAccount",
        summary="Create an integration account",
        opt=MANAGE,
        description="The channel's first account becomes its default. An email account gets a webhook secret, "
        "shown in this answer only. 409 when the provider account is connected already (here or elsewhere).",
    )
    async def create_account(
        self, db: DB, settings: AppSettings, actor: CurrentActor, data: JSONBody[IntegrationAccountCreate]
    ) -> IntegrationAccountCreated:
        return await service.create_account(db, settings, actor, data)

    @get(
        "/{account_id:uuid}",
        operation_id="getIntegrationAccount",
        summary="Get an integration account by ID",
        opt=MANAGE,
    )
    async def get_account(
        self, db: DB, settings: AppSettings, actor: CurrentActor, account_id: FromPath[UUID]
    ) -> IntegrationAccount:
        return await service.get_account(db, settings, actor, account_id)

    @patch(
        "/{account_id:uuid}",
        operation_id="updateIntegrationAccount",
        summary="Update an integration account",
        opt=MANAGE,
    )
    async def update_account(
        self,
        db: DB,
        settings: AppSettings,
        actor: CurrentActor,
        account_id: FromPath[UUID],
        data: JSONBody[IntegrationAccountUpdate],
    ) -> IntegrationAccount:
        return await service.update_account(db, settings, actor, account_id, data)

    @delete(
        "/{account_id:uuid}",
        operation_id="deleteIntegrationAccount",
        summary="Delete an integration account",
        opt=MANAGE,
        status_code=200,
        description="When it was the default, the oldest remaining account (an active one first) takes its place.",
    )
    async def delete_account(self, db: DB, actor: CurrentActor, account_id: FromPath[UUID]) -> Message:
        await service.delete_account(db, actor, account_id)
        return Message(message="integration account deleted", id=str(account_id))

    @post(
        "/{account_id:uuid}/default",
        operation_id="setDefaultIntegrationAccount",
        summary="Set an integration account as the default for its channel",
        opt=MANAGE,
        status_code=200,
    )
    async def set_default(
        self, db: DB, settings: AppSettings, actor: CurrentActor, account_id: FromPath[UUID]
    ) -> IntegrationAccount:
        return await service.set_default_account(db, settings, actor, account_id)

    @get(
        "/{account_id:uuid}/whatsapp-health",
        operation_id="getWhatsAppHealth",
        summary="Fetch WhatsApp account health from Meta Graph API",
        opt=CALLS_META,
        description="422 for an account that is not WhatsApp or has no token; 502 when Meta refuses (an "
        "expired token is Meta's code 190, named in `detail` and `provider_error_code`).",
    )
    async def whatsapp_health(
        self, db: DB, settings: AppSettings, actor: CurrentActor, account_id: FromPath[UUID]
    ) -> WhatsAppHealth:
        return await service.whatsapp_health(db, settings, actor, account_id)


CONTROLLERS = [IntegrationController, IntegrationAccountController]
