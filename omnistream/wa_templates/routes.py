from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import Controller, delete, get, patch, post
from litestar.params import FromPath, JSONBody, QueryParameter

from omnistream.kit.deps import DB, AppSettings, CurrentActor, Paging
from omnistream.kit.openapi import ERRORS
from omnistream.kit.schema import Message, pattern
from omnistream.messages.schemas import LANGUAGE_PATTERN
from omnistream.security.guards import access
from omnistream.wa_templates import service
from omnistream.wa_templates.schemas import (
    Category,
    HeaderMediaUpdate,
    MetaId,
    Status,
    SyncResult,
    WaTemplate,
    WaTemplateCreate,
    WaTemplateList,
    WaTemplateSync,
)

TEMPLATES_READ = access("agent", "templates.read")
TEMPLATES_MANAGE = access("admin", "templates.manage")
NAME_PART = pattern(r"^[a-z0-9_]+$", "may hold only lowercase letters, digits and _")


class WaTemplateController(Controller):
    path = "/api/wa-templates"
    tags = ["WA Templates"]

    @get(operation_id="listWaTemplates", summary="List WhatsApp message templates", opt=TEMPLATES_READ)
    async def list_templates(
        self,
        db: DB,
        actor: CurrentActor,
        params: Paging,
        status: Annotated[Status | None, QueryParameter(description="Meta's review status")] = None,
        category: Annotated[Category | None, QueryParameter()] = None,
        language: Annotated[
            str | None,
            QueryParameter(min_length=2, max_length=15, pattern=LANGUAGE_PATTERN, description="Such as en_US"),
        ] = None,
        q: Annotated[
            str | None,
            QueryParameter(max_length=512, pattern=NAME_PART, description="Part of the name (lowercase, digits, _)"),
        ] = None,
        business_account_id: Annotated[
            MetaId | None, QueryParameter(description="The WhatsApp business account")
        ] = None,
    ) -> WaTemplateList:
        return await service.list_templates(
            db,
            actor,
            params,
            status=status,
            category=category,
            language=language,
            q=q,
            business_account_id=business_account_id,
        )

    @post(
        operation_id="createWaTemplate",
        summary="Create a WhatsApp message template",
        opt={**TEMPLATES_MANAGE, ERRORS: (502,)},
        description="Submitted to Meta for review (POST /{waba_id}/message_templates) and kept with the status "
        "Meta answers (PENDING until reviewed; a sync brings the verdict). 422 without a connected WhatsApp "
        "account or against Meta's rules for components; 409 for a name and language the business account "
        "has; 502 when Meta refuses it, and nothing is kept.",
    )
    async def create_template(
        self, db: DB, settings: AppSettings, actor: CurrentActor, data: JSONBody[WaTemplateCreate]
    ) -> WaTemplate:
        return await service.create_template(db, settings, actor, data)

    @post(
        "/sync",
        operation_id="syncWaTemplates",
        summary="Sync templates from Meta",
        opt={**TEMPLATES_MANAGE, ERRORS: (502,)},
        status_code=200,
        description="Reads every template of the business account from Meta (all pages) and creates or updates "
        "them here by name and language. Templates only kept here are left as they are.",
    )
    async def sync_templates(
        self, db: DB, settings: AppSettings, actor: CurrentActor, data: JSONBody[WaTemplateSync | None] = None
    ) -> SyncResult:
        return await service.sync_templates(db, settings, actor, data or WaTemplateSync())

    @get(
        "/{template_id:uuid}",
        operation_id="getWaTemplate",
        summary="Get a WhatsApp template by ID",
        opt=TEMPLATES_READ,
    )
    async def get_template(self, db: DB, actor: CurrentActor, template_id: FromPath[UUID]) -> WaTemplate:
        return await service.get_template(db, actor, template_id)

    @delete(
        "/{template_id:uuid}",
        operation_id="deleteWaTemplate",
        summary="Delete a WhatsApp template (local only)",
        opt=TEMPLATES_MANAGE,
        status_code=200,
        description="Forgets the template here; it stays at Meta, and the next sync brings it back.",
    )
    async def delete_template(self, db: DB, actor: CurrentActor, template_id: FromPath[UUID]) -> Message:
        await service.delete_template(db, actor, template_id)
        return Message(message="template deleted", id=str(template_id))

    @patch(
        "/{template_id:uuid}/header-media",
        operation_id="updateWaTemplateHeaderMedia",
        summary="Update template header media URL",
        opt=TEMPLATES_MANAGE,
        description="The https URL of the image, video or document sent as the header of messages that name "
        "none; only for templates whose header is media (422 otherwise).",
    )
    async def set_header_media(
        self, db: DB, actor: CurrentActor, template_id: FromPath[UUID], data: JSONBody[HeaderMediaUpdate]
    ) -> WaTemplate:
        return await service.set_header_media(db, actor, template_id, data)


CONTROLLERS = [WaTemplateController]
