"""Private notes: agents' remarks on a conversation, never sent to the contact."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from omnistream.activity import service as activity
from omnistream.conversations import service as conversations
from omnistream.db import Database
from omnistream.errors import Forbidden, not_found
from omnistream.kit.pagination import ListParams, page_of
from omnistream.notes import repository
from omnistream.notes.schemas import Note, NoteCreate, NoteList, NoteUpdate
from omnistream.security.permissions import RoleLevel
from omnistream.security.principal import Actor


async def list_notes(db: Database, actor: Actor, conversation_id: UUID, params: ListParams) -> NoteList:
    async with db.read(actor.tenant_id) as conn:
        await conversations.require_visible(conn, actor, conversation_id)
        rows, total = await repository.list_page(conn, actor.tenant_id, conversation_id, params)
    rows, next_cursor = page_of(rows, params)
    return NoteList(notes=rows, next_cursor=next_cursor, total=total)


async def create_note(db: Database, actor: Actor, conversation_id: UUID, data: NoteCreate) -> Note:
    async with db.tenant(actor.tenant_id) as conn:
        await conversations.require_visible(conn, actor, conversation_id)
        note_id = await repository.insert(conn, actor.tenant_id, conversation_id, actor.user_id, data.body)
        await activity.record(conn, actor, "note.created", "note", note_id, conversation_id=str(conversation_id))
        note = await repository.get(conn, actor.tenant_id, note_id)
    assert note is not None
    return note


async def _editable(conn: asyncpg.Connection, actor: Actor, note_id: UUID) -> Note:
    note = await repository.get(conn, actor.tenant_id, note_id)
    if note is None:
        raise not_found("note")
    # A note on a conversation the actor cannot see does not exist for them.
    await conversations.require_visible(conn, actor, note.conversation_id)
    if note.author_id != actor.user_id and actor.level < RoleLevel.admin:
        raise Forbidden("only the note's author or an admin can change it")
    return note


async def update_note(db: Database, actor: Actor, note_id: UUID, data: NoteUpdate) -> Note:
    async with db.tenant(actor.tenant_id) as conn:
        await _editable(conn, actor, note_id)
        await repository.update(conn, actor.tenant_id, note_id, data.body)
        await activity.record(conn, actor, "note.updated", "note", note_id)
        note = await repository.get(conn, actor.tenant_id, note_id)
    assert note is not None
    return note


async def delete_note(db: Database, actor: Actor, note_id: UUID) -> None:
    async with db.tenant(actor.tenant_id) as conn:
        note = await _editable(conn, actor, note_id)
        await repository.delete(conn, actor.tenant_id, note_id)
        await activity.record(conn, actor, "note.deleted", "note", note_id, conversation_id=str(note.conversation_id))


async def add_in(conn: asyncpg.Connection, actor: Actor, conversation_id: UUID, body: str) -> UUID:
    """A note by the actor (automation: no agent) inside the caller's transaction."""
    note_id = await repository.insert(conn, actor.tenant_id, conversation_id, actor.user_id, body)
    await activity.record(conn, actor, "note.created", "note", note_id, conversation_id=str(conversation_id))
    return note_id
