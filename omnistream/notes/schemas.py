from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from omnistream.kit.schema import NOT_BLANK, Input, Schema

NoteBody = Annotated[str, msgspec.Meta(min_length=1, max_length=10_000, pattern=NOT_BLANK)]


class Note(Schema):
    id: UUID
    conversation_id: UUID
    author_type: Literal["agent", "automation"]
    """An agent wrote it, or an automation rule's add_note action did."""
    author_id: UUID | None
    """The agent; null for automation."""
    author_name: str
    body: str
    created_at: datetime
    updated_at: datetime


class NoteCreate(Input):
    body: NoteBody


class NoteUpdate(Input):
    body: NoteBody


class NoteList(Schema):
    notes: list[Note]
    next_cursor: str | None
    total: int
