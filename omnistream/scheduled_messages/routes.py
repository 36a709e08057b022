from __future__ import annotations

from uuid import UUID

from litestar import Controller, delete, get, post
from litestar.params import FromPath, FromQuery, JSONBody

from omnistream.kit.deps import DB, AppSettings, CurrentActor, Paging
from omnistream.kit.schema import Message
from omnistream.scheduled_messages import service
from omnistream.scheduled_messages.schemas import (
    ScheduledMessage,
    ScheduledMessageCreate,
    ScheduledMessageList,
    ScheduledStatus,
)
from omnistream.security.guards import access

READ = access("agent", "conversations.read")
SEND = access("agent", "messages.send")


class ConversationScheduledMessageController(Controller):
    path = "/api/conversations/{conversation_id:uuid}/scheduled-messages"
    tags = ["Scheduled Messages"]

    @post(
        operation_id="scheduleMessage",
        summary="Schedule a message for future delivery",
        opt=SEND,
        description="The body of POST /api/conversations/{id}/messages plus send_at, at least a minute "
        "and at most a year ahead (422). At its time the message is sent as the agent who scheduled it; "
        "what only then can be known (a closed conversation, WhatsApp's 24-hour window, the agent's "
        "access) is checked then, and a refusal marks it failed with its failure_reason. A closed "
        "conversation is 409 now; a WhatsApp template must be approved and its parameters fit (422).",
    )
    async def schedule_message(
        self,
        db: DB,
        settings: AppSettings,
        actor: CurrentActor,
        conversation_id: FromPath[UUID],
        data: JSONBody[ScheduledMessageCreate],
    ) -> ScheduledMessage:
        return await service.schedule(db, settings, actor, conversation_id, data)

    @get(
        operation_id="listScheduledMessages",
        summary="List scheduled messages for a conversation",
        opt=READ,
        description="Latest send_at first by default (sort_order=asc: the next one first); the cursor "
        "continues by send_at.",
    )
    async def list_scheduled_messages(
        self,
        db: DB,
        actor: CurrentActor,
        conversation_id: FromPath[UUID],
        params: Paging,
        status: FromQuery[ScheduledStatus | None] = None,
    ) -> ScheduledMessageList:
        return await service.list_scheduled(db, actor, conversation_id, params, status)


class ScheduledMessageController(Controller):
    path = "/api/scheduled-messages"
    tags = ["Scheduled Messages"]

    @delete(
        "/{scheduled_message_id:uuid}",
        operation_id="cancelScheduledMessage",
        summary="Cancel a scheduled message",
        opt=SEND,
        status_code=200,
        description="Only a pending one: one already sent, failed or cancelled is 409.",
    )
    async def cancel_scheduled_message(
        self, db: DB, actor: CurrentActor, scheduled_message_id: FromPath[UUID]
    ) -> Message:
        await service.cancel(db, actor, scheduled_message_id)
        return Message(message="scheduled message cancelled", id=str(scheduled_message_id))


CONTROLLERS = [ConversationScheduledMessageController, ScheduledMessageController]
