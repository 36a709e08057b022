from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from litestar import Controller, delete, get, patch, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery, JSONBody, QueryParameter
from litestar.response import Stream

from omnistream.kit.body import FORM_OVERHEAD_BYTES
from omnistream.kit.deps import DB, CurrentActor, Paging
from omnistream.kit.openapi import ERRORS
from omnistream.kit.schema import NO_NUL, Message
from omnistream.quick_replies import service
from omnistream.quick_replies.schemas import (
    VARIABLES,
    QuickReply,
    QuickReplyCreate,
    QuickReplyImport,
    QuickReplyImportUpload,
    QuickReplyList,
    QuickReplyUpdate,
    QuickReplyUse,
    QuickReplyUsed,
)
from omnistream.security.guards import access

QUICK_REPLIES_READ = access("agent", "quick_replies.read")
QUICK_REPLIES_MANAGE = access("supervisor", "quick_replies.manage")
VARIABLES_NOTE = f" Content may use the variables {', '.join('{{' + v + '}}' for v in VARIABLES)}; others are 422."
CSV_NOTE = (
    "Columns: shortcut, title, content, division_id, media_id (a header row, UTF-8). A cell a spreadsheet "
    "would run as a formula (= + - @, tab, carriage return), or one starting with a single quote, is written "
    "with a leading single quote; import takes one leading quote off, so a round trip changes nothing."
)


class QuickReplyController(Controller):
    path = "/api/quick-replies"
    tags = ["Quick Replies"]

    @get(
        operation_id="listQuickReplies",
        summary="List all quick replies",
        opt=QUICK_REPLIES_READ,
        description="Agents see the replies of no division and of their own divisions. A cursor continues the "
        "newest order only; with sort=usage or favorites_first page by number.",
    )
    async def list_quick_replies(
        self,
        db: DB,
        actor: CurrentActor,
        params: Paging,
        q: Annotated[
            str | None,
            QueryParameter(max_length=200, pattern=NO_NUL, description="Part of the shortcut, title or content"),
        ] = None,
        division_id: FromQuery[UUID | None] = None,
        sort: Annotated[
            Literal["newest", "usage"], QueryParameter(description="newest first, or the most used first")
        ] = "newest",
        favorites_first: Annotated[bool, QueryParameter(description="The caller's favourites before the rest")] = False,
    ) -> QuickReplyList:
        return await service.list_quick_replies(
            db, actor, params, q=q, division_id=division_id, sort=sort, favorites_first=favorites_first
        )

    @post(
        operation_id="createQuickReply",
        summary="Create a quick reply",
        opt=QUICK_REPLIES_MANAGE,
        description="The shortcut is unique in the organisation, ignoring case (409 otherwise); media_id and "
        "division_id must name this organisation's media file and division (422)." + VARIABLES_NOTE,
    )
    async def create_quick_reply(self, db: DB, actor: CurrentActor, data: JSONBody[QuickReplyCreate]) -> QuickReply:
        return await service.create_quick_reply(db, actor, data)

    @get(
        "/export",
        operation_id="exportQuickReplies",
        summary="Export quick replies as CSV",
        opt=QUICK_REPLIES_MANAGE,
        media_type="text/csv",
        description="A CSV file, streamed, oldest reply first. " + CSV_NOTE,
    )
    async def export_quick_replies(self, db: DB, actor: CurrentActor) -> Stream:
        return Stream(
            service.export_csv(db, actor),
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": 'attachment; filename="quick-replies.csv"'},
        )

    @post(
        "/import",
        operation_id="importQuickReplies",
        summary="Import quick replies from CSV",
        opt={**QUICK_REPLIES_MANAGE, ERRORS: (409, 413)},
        status_code=200,
        description="A multipart/form-data body with the CSV as its `file` part. Rows are upserted by shortcut "
        "(ignoring case), all in one transaction; each row answers created, updated, unchanged or refused with "
        f"its line and why. At most {service.MAX_IMPORT_BYTES} bytes (413) and {service.MAX_IMPORT_ROWS} rows; "
        "a missing or unknown column in the header is 422. dry_run=true answers the same and writes nothing. "
        + CSV_NOTE,
        request_max_body_size=service.MAX_IMPORT_BYTES + FORM_OVERHEAD_BYTES,
    )
    async def import_quick_replies(
        self,
        db: DB,
        actor: CurrentActor,
        data: Annotated[QuickReplyImportUpload, Body(media_type=RequestEncodingType.MULTI_PART)],
        dry_run: Annotated[bool, QueryParameter(description="Report what an import would do, write nothing")] = False,
    ) -> QuickReplyImport:
        return await service.import_csv(db, actor, data.file, dry_run=dry_run)

    @patch(
        "/{quick_reply_id:uuid}",
        operation_id="updateQuickReply",
        summary="Update a quick reply",
        opt=QUICK_REPLIES_MANAGE,
        description="Only the fields given change; null media_id or division_id removes it." + VARIABLES_NOTE,
    )
    async def update_quick_reply(
        self, db: DB, actor: CurrentActor, quick_reply_id: FromPath[UUID], data: JSONBody[QuickReplyUpdate]
    ) -> QuickReply:
        return await service.update_quick_reply(db, actor, quick_reply_id, data)

    @delete(
        "/{quick_reply_id:uuid}",
        operation_id="deleteQuickReply",
        summary="Delete a quick reply",
        opt=QUICK_REPLIES_MANAGE,
        status_code=200,
    )
    async def delete_quick_reply(self, db: DB, actor: CurrentActor, quick_reply_id: FromPath[UUID]) -> Message:
        await service.delete_quick_reply(db, actor, quick_reply_id)
        return Message(message="quick reply deleted", id=str(quick_reply_id))

    @post(
        "/{quick_reply_id:uuid}/use",
        operation_id="useQuickReply",
        summary="Record usage of a quick reply",
        opt=QUICK_REPLIES_READ,
        status_code=200,
        description="Counts one use and answers the reply; with a conversation_id (one the caller can see, "
        "422 otherwise) also its content with the variables filled in from that conversation.",
    )
    async def use_quick_reply(
        self,
        db: DB,
        actor: CurrentActor,
        quick_reply_id: FromPath[UUID],
        data: JSONBody[QuickReplyUse | None] = None,
    ) -> QuickReplyUsed:
        return await service.use_quick_reply(db, actor, quick_reply_id, data)

    @post(
        "/{quick_reply_id:uuid}/favorite",
        operation_id="addQuickReplyFavorite",
        summary="Add quick reply to favorites",
        opt=QUICK_REPLIES_READ,
        status_code=200,
        description="A favourite of the caller's own; marking one again changes nothing.",
    )
    async def add_favorite(self, db: DB, actor: CurrentActor, quick_reply_id: FromPath[UUID]) -> QuickReply:
        return await service.add_favorite(db, actor, quick_reply_id)

    @delete(
        "/{quick_reply_id:uuid}/favorite",
        operation_id="removeQuickReplyFavorite",
        summary="Remove quick reply from favorites",
        opt=QUICK_REPLIES_READ,
        description="204 also when it was no favourite; 404 for a reply the caller cannot see.",
    )
    async def remove_favorite(self, db: DB, actor: CurrentActor, quick_reply_id: FromPath[UUID]) -> None:
        await service.remove_favorite(db, actor, quick_reply_id)


CONTROLLERS = [QuickReplyController]
