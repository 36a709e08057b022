from __future__ import annotations

from uuid import UUID

from litestar import Controller, delete, get, patch, post
from litestar.params import FromPath, JSONBody

from omnistream.kit.deps import DB, CurrentActor, Paging
from omnistream.kit.schema import Message
from omnistream.notes import service
from omnistream.notes.schemas import Note, NoteCreate, NoteList, NoteUpdate
from omnistream.security.guards import access

WRITE = access("agent", "notes.write")


class ConversationNoteController(Controller):
    path = "/api/conversations/{conversation_id:uuid}/notes"
    tags = ["Notes"]

    @get(operation_id="listNotes", summary="List notes for a conversation", opt=access("agent", "conversations.read"))
    async def list_notes(
        self, db: DB, actor: CurrentActor, conversation_id: FromPath[UUID], params: Paging
    ) -> NoteList:
        return await service.list_notes(db, actor, conversation_id, params)

    @post(operation_id="createNote", summary="Create a note", opt=WRITE)
    async def create_note(
        self, db: DB, actor: CurrentActor, conversation_id: FromPath[UUID], data: JSONBody[NoteCreate]
    ) -> Note:
        return await service.create_note(db, actor, conversation_id, data)


class NoteController(Controller):
    path = "/api/notes/{note_id:uuid}"
    tags = ["Notes"]

    @patch(
        operation_id="updateNote",
        summary="Update a note",
        opt=WRITE,
        description="Only the note's author, or an admin, can change it.",
    )
    async def update_note(
        self, db: DB, actor: CurrentActor, note_id: FromPath[UUID], data: JSONBody[NoteUpdate]
    ) -> Note:
        return await service.update_note(db, actor, note_id, data)

    @delete(operation_id="deleteNote", summary="Delete a note", opt=WRITE, status_code=200)
    async def delete_note(self, db: DB, actor: CurrentActor, note_id: FromPath[UUID]) -> Message:
        await service.delete_note(db, actor, note_id)
        return Message(message="note deleted", id=str(note_id))


CONTROLLERS = [ConversationNoteController, NoteController]
