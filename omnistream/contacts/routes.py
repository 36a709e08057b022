from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from litestar import Controller, get, patch
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from omnistream.contacts import service
from omnistream.contacts.schemas import Channel, Contact, ContactList, ContactUpdate
from omnistream.conversations import service as conversations
from omnistream.conversations.schemas import ConversationList
from omnistream.kit.deps import DB, CurrentActor, Paging
from omnistream.kit.pagination import QueryDateTime
from omnistream.kit.schema import NO_NUL
from omnistream.security.guards import access

READ = access("agent", "contacts.read")


class ContactController(Controller):
    path = "/api/contacts"
    tags = ["Contacts"]

    @get(operation_id="listContacts", summary="List contacts", opt=READ)
    async def list_contacts(
        self,
        db: DB,
        actor: CurrentActor,
        params: Paging,
        q: Annotated[
            str | None, QueryParameter(max_length=200, pattern=NO_NUL, description="Part of a name, email or phone")
        ] = None,
        tag: Annotated[str | None, QueryParameter(max_length=50, pattern=NO_NUL)] = None,
        channel: FromQuery[Channel | None] = None,
        created_from: QueryDateTime = None,
        created_to: QueryDateTime = None,
    ) -> ContactList:
        return await service.list_contacts(
            db, actor, params, q=q or None, tag=tag, channel=channel, created_from=created_from, created_to=created_to
        )

    @get("/{contact_id:uuid}", operation_id="getContact", summary="Get a contact by ID", opt=READ)
    async def get_contact(self, db: DB, actor: CurrentActor, contact_id: FromPath[UUID]) -> Contact:
        return await service.get_contact(db, actor, contact_id)

    @patch(
        "/{contact_id:uuid}",
        operation_id="updateContact",
        summary="Update a contact",
        opt=access("agent", "contacts.write"),
    )
    async def update_contact(
        self, db: DB, actor: CurrentActor, contact_id: FromPath[UUID], data: JSONBody[ContactUpdate]
    ) -> Contact:
        return await service.update_contact(db, actor, contact_id, data)

    @get(
        "/{contact_id:uuid}/conversations",
        operation_id="listContactConversations",
        summary="List conversations for a contact",
        opt=READ,
    )
    async def list_contact_conversations(
        self,
        db: DB,
        actor: CurrentActor,
        contact_id: FromPath[UUID],
        params: Paging,
        sort_by: FromQuery[Literal["last_activity_at", "created_at"]] = "last_activity_at",
    ) -> ConversationList:
        await service.get_contact(db, actor, contact_id)  # 404 for an unknown or foreign contact
        return await conversations.list_conversations(
            db,
            actor,
            params,
            sort_by=sort_by,
            status=None,
            channel=None,
            assignee=None,
            division_id=None,
            tag=None,
            contact_id=contact_id,
            created_from=None,
            created_to=None,
            q=None,
        )


CONTROLLERS = [ContactController]
