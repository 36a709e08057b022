from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from litestar import Controller, get, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from omnistream.contacts.schemas import Channel
from omnistream.kit.deps import DB, CurrentActor, Jobs, Paging
from omnistream.kit.pagination import QueryDateTime
from omnistream.kit.schema import NO_NUL
from omnistream.messages import service
from omnistream.messages.schemas import ChatMessage, ChatMessageList, MessageSearchResult, MessageSend
from omnistream.security.guards import access

READ = access("agent", "conversations.read")


class ConversationMessageController(Controller):
    path = "/api/conversations/{conversation_id:uuid}/messages"
    tags = ["Messages"]

    @get(
        operation_id="listMessages",
        summary="List messages in a conversation",
        opt=READ,
        description="Newest first by default; sort_order=asc for oldest first.",
    )
    async def list_messages(
        self, db: DB, actor: CurrentActor, conversation_id: FromPath[UUID], params: Paging
    ) -> ChatMessageList:
        return await service.list_messages(db, actor, conversation_id, params)

    @post(
        operation_id="sendMessage",
        summary="Send an outbound message",
        opt=access("agent", "messages.send"),
        description="Stored as queued and handed to the delivery worker; its status then follows the "
        "provider (sent, delivered, read or failed). On WhatsApp, free-form messages more than "
        "24 hours after the customer's last message are refused with 422: send a template.",
    )
    async def send_message(
        self, db: DB, arq: Jobs, actor: CurrentActor, conversation_id: FromPath[UUID], data: JSONBody[MessageSend]
    ) -> ChatMessage:
        return await service.send_message(db, arq, actor, conversation_id, data)


class MessageSearchController(Controller):
    path = "/api/messages/search"
    tags = ["Messages"]

    @get(
        operation_id="searchMessages",
        summary="Search messages across conversations",
        opt=READ,
        description='Full-text search (web-search syntax: words, "phrases", -exclusions, or), best match '
        "first, with highlighted snippets. Paginated by page and per_page.",
    )
    async def search(
        self,
        db: DB,
        actor: CurrentActor,
        params: Paging,
        q: Annotated[
            str, QueryParameter(min_length=1, max_length=200, pattern=NO_NUL, description="What to search for")
        ],
        channel: FromQuery[Channel | None] = None,
        conversation_id: FromQuery[UUID | None] = None,
        direction: FromQuery[Literal["inbound", "outbound"] | None] = None,
        created_from: QueryDateTime = None,
        created_to: QueryDateTime = None,
    ) -> MessageSearchResult:
        return await service.search_messages(
            db,
            actor,
            params,
            q=q,
            channel=channel,
            conversation_id=conversation_id,
            direction=direction,
            created_from=created_from,
            created_to=created_to,
        )


CONTROLLERS = [ConversationMessageController, MessageSearchController]
