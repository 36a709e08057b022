from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from litestar import Controller, delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from omnistream.kit.deps import DB, AppSettings, CurrentActor, Paging
from omnistream.kit.pagination import QueryDateTime
from omnistream.kit.schema import NO_NUL, Message
from omnistream.outgoing_webhooks import service
from omnistream.outgoing_webhooks.schemas import (
    EventTypeCatalog,
    OutgoingWebhook,
    OutgoingWebhookCreate,
    OutgoingWebhookCreated,
    OutgoingWebhookList,
    OutgoingWebhookUpdate,
    WebhookDelivery,
    WebhookDeliveryList,
    WebhookTest,
)
from omnistream.security.guards import access

WEBHOOKS_MANAGE = access("admin", "webhooks.manage")
EventTypeFilter = Annotated[
    str | None, QueryParameter(max_length=100, pattern=NO_NUL, description="An event type, such as message.received")
]
RULES = (
    "event_types must be names from /api/outgoing-webhooks/event-types; the URL must be https and resolve to "
    "a public address (422 otherwise); custom headers cannot set Content-Type, User-Agent or X-OmniStream-*."
)


class OutgoingWebhookController(Controller):
    path = "/api/outgoing-webhooks"
    tags = ["Outgoing Webhooks"]

    @get(operation_id="listOutgoingWebhooks", summary="List outgoing webhooks", opt=WEBHOOKS_MANAGE)
    async def list_webhooks(
        self,
        db: DB,
        actor: CurrentActor,
        params: Paging,
        enabled: FromQuery[bool | None] = None,
        event_type: EventTypeFilter = None,
    ) -> OutgoingWebhookList:
        return await service.list_webhooks(db, actor, params, enabled=enabled, event_type=event_type)

    @post(
        operation_id="createOutgoingWebhook",
        summary="Create an outgoing webhook",
        opt=WEBHOOKS_MANAGE,
        description="The answer carries the signing secret (made when not given) this once; afterwards only "
        "its hint. " + RULES,
    )
    async def create_webhook(
        self, db: DB, settings: AppSettings, actor: CurrentActor, data: JSONBody[OutgoingWebhookCreate]
    ) -> OutgoingWebhookCreated:
        return await service.create_webhook(db, settings, actor, data)

    @get(
        "/event-types",
        operation_id="listOutgoingWebhookEventTypes",
        summary="List available webhook event types",
        opt=WEBHOOKS_MANAGE,
        description="Each event type with what it means and an example of its `data`, and the envelope every "
        "delivery has. Each delivery is signed: X-OmniStream-Signature is t=<unix seconds>,v1=<hex HMAC-SHA256 "
        "of f'{t}.{body}' with the endpoint's secret>; X-OmniStream-Delivery stays the same across retries.",
    )
    async def list_event_types(self) -> EventTypeCatalog:
        return service.event_types()

    @patch(
        "/{webhook_id:uuid}",
        operation_id="updateOutgoingWebhook",
        summary="Update an outgoing webhook",
        opt=WEBHOOKS_MANAGE,
        description="Only the fields given change. enabled=true re-enables an endpoint disabled by failures and "
        "clears its failure record. " + RULES,
    )
    async def update_webhook(
        self,
        db: DB,
        settings: AppSettings,
        actor: CurrentActor,
        webhook_id: FromPath[UUID],
        data: JSONBody[OutgoingWebhookUpdate],
    ) -> OutgoingWebhook:
        return await service.update_webhook(db, settings, actor, webhook_id, data)

    @delete(
        "/{webhook_id:uuid}",
        operation_id="deleteOutgoingWebhook",
        summary="Delete an outgoing webhook",
        opt=WEBHOOKS_MANAGE,
        status_code=200,
        description="Its pending deliveries and its log go with it.",
    )
    async def delete_webhook(self, db: DB, actor: CurrentActor, webhook_id: FromPath[UUID]) -> Message:
        await service.delete_webhook(db, actor, webhook_id)
        return Message(message="outgoing webhook deleted", id=str(webhook_id))

    @get(
        "/{webhook_id:uuid}/deliveries",
        operation_id="listOutgoingWebhookDeliveries",
        summary="List deliveries for a webhook",
        opt=WEBHOOKS_MANAGE,
        description="Every attempt, newest first: the request as sent (custom header values hidden), the "
        "status code or error, the duration and the start of the answer. Test sends are included.",
    )
    async def list_deliveries(
        self,
        db: DB,
        actor: CurrentActor,
        params: Paging,
        webhook_id: FromPath[UUID],
        event_type: EventTypeFilter = None,
        event_id: FromQuery[UUID | None] = None,
        succeeded: FromQuery[bool | None] = None,
        created_from: QueryDateTime = None,
        created_to: QueryDateTime = None,
    ) -> WebhookDeliveryList:
        return await service.list_deliveries(
            db,
            actor,
            webhook_id,
            params,
            event_type=event_type,
            event_id=event_id,
            succeeded=succeeded,
            created_from=created_from,
            created_to=created_to,
        )

    @post(
        "/{webhook_id:uuid}/test",
        operation_id="testOutgoingWebhook",
        summary="Send a test event to the webhook",
        opt=WEBHOOKS_MANAGE,
        status_code=200,
        description="Posts the example of an event type (the endpoint's first when not named), signed, now, "
        "and answers what came back; recorded in the deliveries log with is_test. A receiver that fails is "
        "still a 200 here: succeeded, status_code and error say how it went.",
    )
    async def test_webhook(
        self,
        db: DB,
        settings: AppSettings,
        actor: CurrentActor,
        webhook_id: FromPath[UUID],
        data: JSONBody[WebhookTest | None] = None,
    ) -> WebhookDelivery:
        return await service.send_test(db, settings, actor, webhook_id, data, now=datetime.now(UTC))


CONTROLLERS = [OutgoingWebhookController]
