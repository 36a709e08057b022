from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec
from litestar.datastructures import UploadFile

from omnistream.kit.schema import NOT_BLANK, Input, Schema, pattern

MAX_SHORTCUT = 50
MAX_TITLE = 200
MAX_CONTENT = 4096
VARIABLES = ("contact.name", "contact.email", "contact.phone", "agent.name", "conversation.id")
"""The names a reply's content may use as `{{name}}`; a conversation's /use fills them in."""

SHORTCUT = pattern(
    r"^[A-Za-z0-9][A-Za-z0-9_-]{0,49}$",
    "must be 1 to 50 letters, digits, - or _, starting with a letter or digit",
)
Shortcut = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=MAX_SHORTCUT,
        pattern=SHORTCUT,
        description="What an agent types to insert the reply; unique in the organisation, ignoring case",
    ),
]
Title = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TITLE, pattern=NOT_BLANK)]
Content = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=MAX_CONTENT,
        pattern=NOT_BLANK,
        description="The text, with variables written `{{contact.name}}`: " + ", ".join(VARIABLES),
    ),
]


class QuickReply(Schema):
    id: UUID
    shortcut: str
    title: str
    content: str
    media_id: UUID | None
    division_id: UUID | None
    """None: every agent sees it; otherwise the division's members (supervisors and admins see all)."""
    usage_count: int
    last_used_at: datetime | None
    is_favorite: bool
    """Whether the caller marked it as a favourite."""
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime


class QuickReplyUsed(QuickReply):
    rendered_content: str | None
    """With a conversation_id: the content with its variables filled in from that conversation."""


class QuickReplyCreate(Input):
    shortcut: Shortcut
    title: Title
    content: Content
    media_id: UUID | None = None
    """A media file of this organisation, sent along with the text."""
    division_id: UUID | None = None


class QuickReplyUpdate(Input):
    shortcut: Shortcut | msgspec.UnsetType = msgspec.UNSET
    title: Title | msgspec.UnsetType = msgspec.UNSET
    content: Content | msgspec.UnsetType = msgspec.UNSET
    media_id: UUID | msgspec.UnsetType | None = msgspec.UNSET
    """null removes the media."""
    division_id: UUID | msgspec.UnsetType | None = msgspec.UNSET
    """null opens the reply to every agent."""


class QuickReplyUse(Input):
    conversation_id: UUID | None = None
    """A conversation the caller can see: the answer then carries the content rendered for it."""


class QuickReplyList(Schema):
    quick_replies: list[QuickReply]
    next_cursor: str | None
    total: int


@dataclass
class QuickReplyImportUpload:
    """A multipart/form-data body with the CSV as its `file` part."""

    file: UploadFile


class ImportRow(Schema):
    line: int
    """The line of the file the row starts on (the header is line 1)."""
    shortcut: str
    status: Literal["created", "updated", "unchanged", "refused"]
    id: UUID | None
    """The reply created or updated (None when refused, and for new rows of a dry run)."""
    reason: str | None
    """Why the row was refused."""


class QuickReplyImport(Schema):
    dry_run: bool
    """True: nothing was written; the statuses say what an import would do."""
    created: int
    updated: int
    unchanged: int
    refused: int
    rows: list[ImportRow]
