from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from litestar import Controller, Request, delete, get, patch, post
from litestar.datastructures import UploadFile
from litestar.params import FromPath, FromQuery, JSONBody

from omnistream.campaigns import service
from omnistream.campaigns.schemas import (
    VARIABLES_NOTE,
    Campaign,
    CampaignCreate,
    CampaignList,
    CampaignSend,
    CampaignStatus,
    CampaignUpdate,
    RecipientList,
    RecipientsAdd,
    RecipientsAdded,
    RecipientsCleared,
    RecipientStatus,
)
from omnistream.contacts.schemas import Channel
from omnistream.errors import BadRequest
from omnistream.kit.body import FORM_OVERHEAD_BYTES, strict_json
from omnistream.kit.deps import DB, AppSettings, CurrentActor, Jobs, Paging
from omnistream.kit.openapi import ERRORS, FILE_PART, RAW_BODY
from omnistream.kit.schema import Message
from omnistream.security.guards import access

CAMPAIGNS_MANAGE = access("supervisor", "campaigns.manage")
MULTIPART = "multipart/form-data"
EXAMPLE_ID = "3f0e2b8e-6a51-4c1e-9d3b-2f4a5c6d7e8f"
CSV_NOTE = (
    "A multipart/form-data body with a CSV file as its `file` part (UTF-8, a header row): a `phone` column (the "
    "number with its country code), an optional `name` (for contacts met here first) and a column for each "
    "variable the message names. Each row answers added, duplicate or refused with its line and why. At most "
    f"{service.MAX_CSV_BYTES} bytes (413) and {service.MAX_CSV_ROWS} rows (422); WhatsApp campaigns only."
)


class CampaignController(Controller):
    path = "/api/campaigns"
    tags = ["Campaigns"]

    @get(
        operation_id="listCampaigns",
        summary="List campaigns",
        opt=CAMPAIGNS_MANAGE,
        description="Newest first; progress is left out (a campaign's GET has it).",
    )
    async def list_campaigns(
        self,
        db: DB,
        actor: CurrentActor,
        params: Paging,
        status: FromQuery[CampaignStatus | None] = None,
        channel: FromQuery[Channel | None] = None,
    ) -> CampaignList:
        return await service.list_campaigns(db, actor, params, status=status, channel=channel)

    @post(
        operation_id="createCampaign",
        summary="Create a new campaign (draft)",
        opt=CAMPAIGNS_MANAGE,
        description="The account must be a connected account of the channel (422). WhatsApp campaigns send an "
        "APPROVED template with its parameters; the other channels send text. " + VARIABLES_NOTE,
    )
    async def create_campaign(
        self, db: DB, settings: AppSettings, actor: CurrentActor, data: JSONBody[CampaignCreate]
    ) -> Campaign:
        return await service.create_campaign(db, settings, actor, data)

    @get(
        "/{campaign_id:uuid}",
        operation_id="getCampaign",
        summary="Get a campaign",
        opt=CAMPAIGNS_MANAGE,
        description="With its progress: each count from the recipients' messages, as status webhooks move them.",
    )
    async def get_campaign(self, db: DB, actor: CurrentActor, campaign_id: FromPath[UUID]) -> Campaign:
        return await service.get_campaign(db, actor, campaign_id)

    @patch(
        "/{campaign_id:uuid}",
        operation_id="updateCampaign",
        summary="Update a draft campaign",
        opt=CAMPAIGNS_MANAGE,
        description="Only a draft changes (409 otherwise); the fields given replace theirs. " + VARIABLES_NOTE,
    )
    async def update_campaign(
        self,
        db: DB,
        settings: AppSettings,
        actor: CurrentActor,
        campaign_id: FromPath[UUID],
        data: JSONBody[CampaignUpdate],
    ) -> Campaign:
        return await service.update_campaign(db, settings, actor, campaign_id, data)

    @delete(
        "/{campaign_id:uuid}",
        operation_id="deleteCampaign",
        summary="Delete a draft campaign",
        opt=CAMPAIGNS_MANAGE,
        status_code=200,
        description="Only a draft (409 otherwise: cancel a campaign that is scheduled or sending).",
    )
    async def delete_campaign(self, db: DB, actor: CurrentActor, campaign_id: FromPath[UUID]) -> Message:
        await service.delete_campaign(db, actor, campaign_id)
        return Message(message="campaign deleted", id=str(campaign_id))

    @get(
        "/{campaign_id:uuid}/recipients",
        operation_id="listCampaignRecipients",
        summary="List campaign recipients",
        opt=CAMPAIGNS_MANAGE,
        description="In the order they were added (sort_order=desc: the newest first). A recipient's status is "
        "pending, skipped or cancelled, or once handed to delivery its message's: queued, sent, delivered, read, "
        "failed.",
    )
    async def list_recipients(
        self,
        db: DB,
        actor: CurrentActor,
        campaign_id: FromPath[UUID],
        params: Paging,
        status: FromQuery[RecipientStatus | None] = None,
    ) -> RecipientList:
        return await service.list_recipients(db, actor, campaign_id, params, status)

    @post(
        "/{campaign_id:uuid}/recipients",
        operation_id="addCampaignRecipients",
        summary="Add recipients to a campaign",
        opt={
            **CAMPAIGNS_MANAGE,
            ERRORS: (413,),
            RAW_BODY: (
                RecipientsAdd,
                {"by_ids": {"contact_ids": [EXAMPLE_ID]}, "by_tags": {"filter": {"tags": ["vip"]}}},
            ),
            FILE_PART: "The CSV file of phone numbers",
        },
        status_code=200,
        description="A draft's (409 otherwise). JSON: contact_ids, or a filter by tags (and the channel they wrote "
        "on); contacts the campaign's channel cannot reach are refused, those already recipients are duplicates "
        f"(a message with CSV variables takes its recipients from a file). At most {service.MAX_RECIPIENTS} "
        "recipients. Or " + CSV_NOTE,
        request_max_body_size=service.MAX_CSV_BYTES + FORM_OVERHEAD_BYTES,
    )
    async def add_recipients(
        self, db: DB, actor: CurrentActor, campaign_id: FromPath[UUID], request: Request[Any, Any, Any]
    ) -> RecipientsAdded:
        if request.content_type[0] == MULTIPART:
            form = await request.form()
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise BadRequest("the form needs the CSV file as its file part", field="file")
            return await service.import_recipients(db, actor, campaign_id, upload)
        data = await strict_json(request, RecipientsAdd)
        return await service.add_recipients(db, actor, campaign_id, data)

    @delete(
        "/{campaign_id:uuid}/recipients",
        operation_id="clearCampaignRecipients",
        summary="Clear all recipients from a campaign",
        opt=CAMPAIGNS_MANAGE,
        status_code=200,
        description="A draft's only (409 otherwise).",
    )
    async def clear_recipients(self, db: DB, actor: CurrentActor, campaign_id: FromPath[UUID]) -> RecipientsCleared:
        removed = await service.clear_recipients(db, actor, campaign_id)
        return RecipientsCleared(message="recipients cleared", id=str(campaign_id), removed=removed)

    @post(
        "/{campaign_id:uuid}/send",
        operation_id="sendCampaign",
        summary="Send or schedule a campaign",
        opt=CAMPAIGNS_MANAGE,
        status_code=200,
        description="A draft with recipients (409 otherwise; 422 without recipients, or when its account or "
        "template can no longer send). Without send_at it starts now; with one (in the future, at most a year "
        "ahead) it is scheduled. The worker sends at the account's rate (its `messages_per_second` setting, "
        f"{service.DEFAULT_MESSAGES_PER_SECOND} by default); contacts who opted out are skipped.",
    )
    async def send_campaign(
        self,
        db: DB,
        arq: Jobs,
        settings: AppSettings,
        actor: CurrentActor,
        campaign_id: FromPath[UUID],
        data: JSONBody[CampaignSend | None] = None,
    ) -> Campaign:
        return await service.send_campaign(
            db, arq, settings, actor, campaign_id, data or CampaignSend(), datetime.now(UTC)
        )

    @post(
        "/{campaign_id:uuid}/cancel",
        operation_id="cancelCampaign",
        summary="Cancel a campaign",
        opt=CAMPAIGNS_MANAGE,
        status_code=200,
        description="Stops a scheduled or sending campaign: recipients not yet sent, and messages still waiting "
        "in the delivery queue, are cancelled; what has gone stays. 409 for a draft or a finished campaign.",
    )
    async def cancel_campaign(self, db: DB, actor: CurrentActor, campaign_id: FromPath[UUID]) -> Campaign:
        return await service.cancel_campaign(db, actor, campaign_id, datetime.now(UTC))


CONTROLLERS = [CampaignController]
