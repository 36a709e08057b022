from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from litestar import Controller, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from omnistream.contacts.schemas import Channel
from omnistream.conversations import service
from omnistream.conversations.schemas import (
    AssignRequest,
    BulkRequest,
    BulkResult,
    Conversation,
    ConversationList,
    ExpireRequest,
    ExpireResult,
    StatusRequest,
    TagsRequest,
    TakeoverRequest,
)
from omnistream.kit.deps import DB, CurrentActor, Paging
from omnistream.kit.pagination import QueryDateTime
from omnistream.kit.schema import NO_NUL, pattern
from omnistream.security.guards import access

_STATUS = "(?:open|pending|resolved|closed|expired)"
STATUS_LIST = pattern(
    rf"^ *{_STATUS} *(?:, *{_STATUS} *)*,? *$",
    "must be one or more of open, pending, resolved, closed, expired, separated by commas",
)
ASSIGNEE = pattern(
    r"^(?:me|unassigned|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$",
    "must be an agent id, me or unassigned",
)

READ = access("agent", "conversations.read")
WRITE = access("agent", "conversations.write")
MANAGE = access("supervisor", "conversations.manage")


class ConversationController(Controller):
    path = "/api/conversations"
    tags = ["Conversations"]

    @get(
        operation_id="listConversations",
        summary="List conversations",
        opt=READ,
        description="Newest activity first by default. Agents see conversations assigned to them, unrouted "
        "ones and those of their divisions; supervisors and admins see all. A conversation whose "
        "activity changes during a cursor walk moves to the top of the list.",
    )
    async def list_conversations(
        self,
        db: DB,
        actor: CurrentActor,
        params: Paging,
        status: Annotated[
            str | None,
            QueryParameter(
                max_length=100,
                pattern=STATUS_LIST,
                description="One or more statuses, comma-separated: open,pending,resolved,closed,expired",
            ),
        ] = None,
        channel: FromQuery[Channel | None] = None,
        assignee: Annotated[
            str | None, QueryParameter(max_length=40, pattern=ASSIGNEE, description="An agent id, 'me' or 'unassigned'")
        ] = None,
        division_id: FromQuery[UUID | None] = None,
        tag: Annotated[str | None, QueryParameter(max_length=50, pattern=NO_NUL)] = None,
        contact_id: FromQuery[UUID | None] = None,
        created_from: QueryDateTime = None,
        created_to: QueryDateTime = None,
        q: Annotated[
            str | None,
            QueryParameter(
                max_length=200, pattern=NO_NUL, description="Contact name, email, phone or last message text"
            ),
        ] = None,
        sort_by: FromQuery[Literal["last_activity_at", "created_at"]] = "last_activity_at",
        with_total: Annotated[
            bool, QueryParameter(description="Count the matches on a cursor page too (the first page always does)")
        ] = False,
    ) -> ConversationList:
        return await service.list_conversations(
            db,
            actor,
            params,
            sort_by=sort_by,
            status=status,
            channel=channel,
            assignee=assignee,
            division_id=division_id,
            tag=tag,
            contact_id=contact_id,
            created_from=created_from,
            created_to=created_to,
            q=q,
            with_total=with_total,
        )

    @get("/{conversation_id:uuid}", operation_id="getConversation", summary="Get a single conversation", opt=READ)
    async def get_conversation(self, db: DB, actor: CurrentActor, conversation_id: FromPath[UUID]) -> Conversation:
        return await service.get_conversation(db, actor, conversation_id)

    @patch(
        "/{conversation_id:uuid}/assign",
        operation_id="assignConversation",
        summary="Assign or unassign an agent",
        opt=access("agent", "conversations.assign"),
    )
    async def assign(
        self, db: DB, actor: CurrentActor, conversation_id: FromPath[UUID], data: JSONBody[AssignRequest]
    ) -> Conversation:
        return await service.assign(db, actor, conversation_id, data)

    @patch(
        "/{conversation_id:uuid}/status",
        operation_id="setConversationStatus",
        summary="Update conversation status",
        opt=WRITE,
    )
    async def set_status(
        self, db: DB, actor: CurrentActor, conversation_id: FromPath[UUID], data: JSONBody[StatusRequest]
    ) -> Conversation:
        return await service.set_status(db, actor, conversation_id, data)

    @post(
        "/{conversation_id:uuid}/read",
        operation_id="markConversationRead",
        summary="Mark conversation as read",
        opt=READ,
        status_code=200,
    )
    async def mark_read(self, db: DB, actor: CurrentActor, conversation_id: FromPath[UUID]) -> Conversation:
        return await service.mark_read(db, actor, conversation_id)

    @post(
        "/expire",
        operation_id="expireConversations",
        summary="Expire stale conversations",
        opt=MANAGE,
        status_code=200,
        description="Applies the tenant's chat expiration rules now; dry_run only reports.",
    )
    async def expire(self, db: DB, actor: CurrentActor, data: JSONBody[ExpireRequest | None] = None) -> ExpireResult:
        return await service.expire(db, actor, actor.tenant_id, data or ExpireRequest())

    @patch(
        "/{conversation_id:uuid}/tags",
        operation_id="updateConversationTags",
        summary="Update conversation tags",
        opt=WRITE,
    )
    async def update_tags(
        self, db: DB, actor: CurrentActor, conversation_id: FromPath[UUID], data: JSONBody[TagsRequest]
    ) -> Conversation:
        return await service.update_tags(db, actor, conversation_id, data)

    @post(
        "/{conversation_id:uuid}/takeover",
        operation_id="takeOverConversation",
        summary="Takeover a conversation",
        opt=MANAGE,
        status_code=200,
        description="The caller takes the conversation from its agent or AI agent; the takeover is recorded "
        "as a transfer.",
    )
    async def take_over(
        self,
        db: DB,
        actor: CurrentActor,
        conversation_id: FromPath[UUID],
        data: JSONBody[TakeoverRequest | None] = None,
    ) -> Conversation:
        return await service.take_over(db, actor, conversation_id, data or TakeoverRequest())

    @post(
        "/bulk",
        operation_id="bulkConversations",
        summary="Bulk conversation actions",
        opt=MANAGE,
        status_code=200,
        description="Assign, change status or tags of up to 500 conversations. Each is "
        "changed completely or not at all; the result lists each outcome.",
    )
    async def bulk(self, db: DB, actor: CurrentActor, data: JSONBody[BulkRequest]) -> BulkResult:
        return await service.bulk(db, actor, data)


CONTROLLERS = [ConversationController]
