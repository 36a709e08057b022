"""Quick replies: canned answers agents insert by shortcut, with variables filled in from the
conversation, optionally limited to one division, and CSV export and import.

Visibility follows conversations: supervisors and admins see every reply; agents see the replies
of no division and those of their own divisions. A reply an agent cannot see is a 404 to them.

CSV: the columns are `CSV_COLUMNS`. A cell a spreadsheet would run as a formula (starting with
= + - @, a tab or a carriage return) is written with a leading single quote, and so is a cell that
itself starts with a quote; import takes exactly one leading quote off, so exporting and
importing back changes nothing.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import asyncpg
import msgspec
from litestar.datastructures import UploadFile

from omnistream.activity import service as activity
from omnistream.conversations import service as conversations
from omnistream.db import Database
from omnistream.divisions import service as divisions
from omnistream.errors import Conflict, NotFound, PayloadTooLarge, Unprocessable, in_words, not_found
from omnistream.kit.pagination import ListParams, page_of
from omnistream.media import service as media
from omnistream.quick_replies import repository
from omnistream.quick_replies.schemas import (
    VARIABLES,
    ImportRow,
    QuickReply,
    QuickReplyCreate,
    QuickReplyImport,
    QuickReplyList,
    QuickReplyUpdate,
    QuickReplyUse,
    QuickReplyUsed,
)
from omnistream.security.permissions import RoleLevel
from omnistream.security.principal import Actor

MAX_IMPORT_BYTES = 1024 * 1024
MAX_IMPORT_ROWS = 5000
EXPORT_BATCH = 500
CSV_COLUMNS = ("shortcut", "title", "content", "division_id", "media_id")
REQUIRED_COLUMNS = frozenset({"shortcut", "title", "content"})
_VARIABLE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
# OWASP's CSV injection advice, plus the quote itself so that the escape can be undone exactly.
_ESCAPED_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")


# ---------------------------------------------------------------- rules


def unknown_variables(content: str) -> list[str]:
    return sorted({m.group(1) for m in _VARIABLE.finditer(content)} - set(VARIABLES))


def _check_variables(content: str) -> None:
    unknown = unknown_variables(content)
    if unknown:
        raise Unprocessable(
            f"unknown variables: {', '.join(unknown)}; known are {', '.join(VARIABLES)}",
            field="content",
            unknown_variables=unknown,
        )


def render(content: str, values: dict[str, str]) -> str:
    return _VARIABLE.sub(lambda m: values.get(m.group(1), m.group(0)), content)


def _shortcut_conflict(shortcut: str) -> Conflict:
    return Conflict(f"a quick reply with the shortcut {shortcut!r} exists (shortcuts ignore case)", field="shortcut")


async def _viewer_divisions(conn: asyncpg.Connection, actor: Actor) -> list[UUID] | None:
    """None for those who see every reply; otherwise the divisions whose replies the agent sees."""
    if actor.level >= RoleLevel.supervisor or actor.user_id is None:
        return None
    return await divisions.agent_division_ids(conn, actor.tenant_id, actor.user_id)


async def _visible(conn: asyncpg.Connection, actor: Actor, quick_reply_id: UUID) -> QuickReply:
    reply = await repository.get(
        conn,
        actor.tenant_id,
        quick_reply_id,
        viewer_id=actor.user_id,
        viewer_divisions=await _viewer_divisions(conn, actor),
    )
    if reply is None:
        raise not_found("quick reply")
    return reply


async def _check_references(
    conn: asyncpg.Connection, tenant_id: UUID, division_id: UUID | None, media_id: UUID | None
) -> None:
    if division_id is not None and not await divisions.exists(conn, tenant_id, division_id):
        raise Unprocessable("no such division in this organisation", field="division_id")
    if media_id is not None and not await media.existing_ids(conn, tenant_id, [media_id]):
        raise Unprocessable("no such media file in this organisation", field="media_id")


def _details(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, UUID) else v for k, v in fields.items()}


# ---------------------------------------------------------------- the API


async def list_quick_replies(
    db: Database,
    actor: Actor,
    params: ListParams,
    *,
    q: str | None,
    division_id: UUID | None,
    sort: str,
    favorites_first: bool,
) -> QuickReplyList:
    keyset = sort == "newest" and not favorites_first
    if params.cursor is not None and not keyset:
        raise Unprocessable(
            "a cursor continues the newest order only; page by number with sort=usage or favorites_first",
            field="cursor",
        )
    async with db.read(actor.tenant_id) as conn:
        rows, total = await repository.list_page(
            conn,
            actor.tenant_id,
            params,
            viewer_id=actor.user_id,
            viewer_divisions=await _viewer_divisions(conn, actor),
            division_id=division_id,
            q=q,
            by_usage=sort == "usage",
            favorites_first=favorites_first,
        )
    rows, next_cursor = page_of(rows, params)
    return QuickReplyList(quick_replies=rows, next_cursor=next_cursor if keyset else None, total=total)


async def create_quick_reply(db: Database, actor: Actor, data: QuickReplyCreate) -> QuickReply:
    _check_variables(data.content)
    fields = msgspec.structs.asdict(data)
    async with db.tenant(actor.tenant_id) as conn:
        await _check_references(conn, actor.tenant_id, data.division_id, data.media_id)
        if await repository.shortcut_taken(conn, actor.tenant_id, data.shortcut, None):
            raise _shortcut_conflict(data.shortcut)
        try:
            quick_reply_id = await repository.insert(conn, actor.tenant_id, actor.user_id, **fields)
        except asyncpg.UniqueViolationError as exc:
            raise _shortcut_conflict(data.shortcut) from exc
        await activity.record(conn, actor, "quick_reply.created", "quick_reply", quick_reply_id, **_details(fields))
        return await _visible(conn, actor, quick_reply_id)


async def update_quick_reply(db: Database, actor: Actor, quick_reply_id: UUID, data: QuickReplyUpdate) -> QuickReply:
    changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET}
    if "content" in changes:
        _check_variables(changes["content"])
    async with db.tenant(actor.tenant_id) as conn:
        current = await repository.lock(conn, actor.tenant_id, quick_reply_id)
        if current is None:
            raise not_found("quick reply")
        await _check_references(conn, actor.tenant_id, changes.get("division_id"), changes.get("media_id"))
        if "shortcut" in changes and await repository.shortcut_taken(
            conn, actor.tenant_id, changes["shortcut"], quick_reply_id
        ):
            raise _shortcut_conflict(changes["shortcut"])
        merged = {name: changes.get(name, current[name]) for name in CSV_COLUMNS}
        changed = {k: v for k, v in changes.items() if v != current[k]}
        if changed:
            try:
                await repository.update(conn, actor.tenant_id, quick_reply_id, actor.user_id, **merged)
            except asyncpg.UniqueViolationError as exc:
                raise _shortcut_conflict(merged["shortcut"]) from exc
            await activity.record(
                conn, actor, "quick_reply.updated", "quick_reply", quick_reply_id, changes=_details(changed)
            )
        return await _visible(conn, actor, quick_reply_id)


async def delete_quick_reply(db: Database, actor: Actor, quick_reply_id: UUID) -> None:
    async with db.tenant(actor.tenant_id) as conn:
        deleted = await repository.delete(conn, actor.tenant_id, quick_reply_id)
        if deleted is None:
            raise not_found("quick reply")
        await activity.record(
            conn, actor, "quick_reply.deleted", "quick_reply", quick_reply_id, shortcut=deleted["shortcut"]
        )


async def use_quick_reply(
    db: Database, actor: Actor, quick_reply_id: UUID, data: QuickReplyUse | None
) -> QuickReplyUsed:
    conversation_id = data.conversation_id if data else None
    async with db.tenant(actor.tenant_id) as conn:
        viewer_divisions = await _viewer_divisions(conn, actor)
        if not await repository.record_use(conn, actor.tenant_id, quick_reply_id, viewer_divisions):
            raise not_found("quick reply")
        reply = await _visible(conn, actor, quick_reply_id)
        rendered = None
        if conversation_id is not None:
            try:
                conversation = await conversations.require_visible(conn, actor, conversation_id)
            except NotFound as exc:
                raise Unprocessable("no such conversation for you", field="conversation_id") from exc
            contact = conversation.contact
            rendered = render(
                reply.content,
                {
                    "contact.name": contact.name,
                    "contact.email": contact.email or "",
                    "contact.phone": contact.phone or "",
                    "agent.name": actor.name,
                    "conversation.id": str(conversation.id),
                },
            )
        await activity.record(
            conn,
            actor,
            "quick_reply.used",
            "quick_reply",
            quick_reply_id,
            conversation_id=str(conversation_id) if conversation_id else None,
        )
        return QuickReplyUsed(**msgspec.structs.asdict(reply), rendered_content=rendered)


def _favoriting_user(actor: Actor) -> UUID:
    if actor.user_id is None:
        raise Unprocessable("favourites belong to an agent", field="id")
    return actor.user_id


async def add_favorite(db: Database, actor: Actor, quick_reply_id: UUID) -> QuickReply:
    """Mark as a favourite of the caller; marking again changes nothing."""
    user_id = _favoriting_user(actor)
    async with db.tenant(actor.tenant_id) as conn:
        await _visible(conn, actor, quick_reply_id)
        if await repository.add_favorite(conn, actor.tenant_id, user_id, quick_reply_id):
            await activity.record(conn, actor, "quick_reply.favorited", "quick_reply", quick_reply_id)
        return await _visible(conn, actor, quick_reply_id)


async def remove_favorite(db: Database, actor: Actor, quick_reply_id: UUID) -> None:
    user_id = _favoriting_user(actor)
    async with db.tenant(actor.tenant_id) as conn:
        await _visible(conn, actor, quick_reply_id)
        if await repository.remove_favorite(conn, actor.tenant_id, user_id, quick_reply_id):
            await activity.record(conn, actor, "quick_reply.unfavorited", "quick_reply", quick_reply_id)


# ---------------------------------------------------------------- CSV


def escape_cell(value: str) -> str:
    return "'" + value if value.startswith(_ESCAPED_STARTS) else value


def unescape_cell(value: str) -> str:
    return value[1:] if value.startswith("'") else value


def _csv_line(buffer: io.StringIO, writer: Any, cells: list[str]) -> bytes:
    buffer.seek(0)
    buffer.truncate()
    writer.writerow(cells)
    return buffer.getvalue().encode()


async def export_csv(db: Database, actor: Actor) -> AsyncIterator[bytes]:
    """Every reply of the organisation, oldest first, a batch at a time (never all in memory)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    yield _csv_line(buffer, writer, list(CSV_COLUMNS))
    after = None
    while True:
        async with db.read(actor.tenant_id) as conn:
            rows = await repository.export_batch(conn, actor.tenant_id, after, EXPORT_BATCH)
        if not rows:
            break
        buffer.seek(0)
        buffer.truncate()
        for row in rows:
            writer.writerow([escape_cell("" if row[c] is None else str(row[c])) for c in CSV_COLUMNS])
        yield buffer.getvalue().encode()
        after = (rows[-1]["created_at"], rows[-1]["id"])
        if len(rows) < EXPORT_BATCH:
            break


class _Row(msgspec.Struct, kw_only=True):
    line: int
    cells: dict[str, Any]
    status: str = "refused"
    reason: str | None = None
    id: UUID | None = None


async def _read_upload(upload: UploadFile) -> str:
    raw = await upload.read(MAX_IMPORT_BYTES + 1)
    if len(raw) > MAX_IMPORT_BYTES:
        raise PayloadTooLarge(f"the file is larger than the {MAX_IMPORT_BYTES} bytes allowed")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Unprocessable("the file is not UTF-8 text", field="file") from exc


def _header(record: list[str]) -> list[str]:
    columns = [cell.strip().lower() for cell in record]
    unknown = sorted(set(columns) - set(CSV_COLUMNS))
    if unknown:
        raise Unprocessable(
            f"unknown columns: {', '.join(unknown)}; the columns are {', '.join(CSV_COLUMNS)}", field="file"
        )
    if len(set(columns)) != len(columns):
        raise Unprocessable("a column is named twice in the header", field="file")
    missing = sorted(REQUIRED_COLUMNS - set(columns))
    if missing:
        raise Unprocessable(f"the header row lacks the columns: {', '.join(missing)}", field="file")
    return columns


def _parse(text: str) -> list[_Row]:
    """The file's rows, each validated on its own; a file that is not CSV at all is a 422."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        first = next(reader, None)
        if first is None:
            raise Unprocessable("the file is empty: it needs a header row", field="file")
        columns = _header(first)
        rows: list[_Row] = []
        line = reader.line_num + 1
        for record in reader:
            start, line = line, reader.line_num + 1
            if not record:
                continue  # a blank line
            if len(rows) == MAX_IMPORT_ROWS:
                raise Unprocessable(f"the file has more than {MAX_IMPORT_ROWS} rows", field="file")
            rows.append(_validate_row(start, columns, record))
    except csv.Error as exc:
        raise Unprocessable(f"line {reader.line_num}: not valid CSV ({exc})", field="file") from exc
    return rows


def _validate_row(line: int, columns: list[str], record: list[str]) -> _Row:
    cells = {name: unescape_cell(value) for name, value in zip(columns, record, strict=False)}
    row = _Row(line=line, cells=cells)
    if len(record) != len(columns):
        row.reason = f"the row has {len(record)} cells, the header {len(columns)}"
        return row
    body: dict[str, Any] = {
        name: cells.get(name) or None if name in ("division_id", "media_id") else cells[name] for name in columns
    }
    try:
        data = msgspec.convert(body, QuickReplyCreate)
    except msgspec.ValidationError as exc:
        row.reason = in_words(str(exc)).replace("`$.", "`")
        return row
    unknown = unknown_variables(data.content)
    if unknown:
        row.reason = f"unknown variables in content: {', '.join(unknown)}"
        return row
    row.cells = msgspec.structs.asdict(data)
    return row


async def import_csv(db: Database, actor: Actor, upload: UploadFile, *, dry_run: bool) -> QuickReplyImport:
    """Upsert by shortcut, all in one transaction; each row answers created, updated, unchanged or
    refused (with why). A dry run answers the same and writes nothing."""
    rows = _parse(await _read_upload(upload))
    first_line: dict[str, int] = {}
    for row in rows:
        if row.reason is None:
            key = row.cells["shortcut"].lower()
            if key in first_line:
                row.reason = f"the shortcut repeats line {first_line[key]}"
            else:
                first_line[key] = row.line
    valid = [row for row in rows if row.reason is None]
    async with db.tenant(actor.tenant_id) as conn:
        await _refuse_unknown_references(conn, actor.tenant_id, valid)
        valid = [row for row in valid if row.reason is None]
        existing = {
            r["shortcut"].lower(): r
            for r in await repository.by_shortcuts(conn, actor.tenant_id, [row.cells["shortcut"] for row in valid])
        }
        to_insert, to_update = [], []
        for row in valid:
            current = existing.get(row.cells["shortcut"].lower())
            if current is None:
                row.status = "created"
                to_insert.append(row)
            else:
                row.id = current["id"]
                same = all(row.cells[name] == current[name] for name in CSV_COLUMNS)
                row.status = "unchanged" if same else "updated"
                if not same:
                    to_update.append(row)
        if not dry_run and (to_insert or to_update):
            try:
                await repository.update_many(
                    conn, actor.tenant_id, actor.user_id, [row.cells | {"id": row.id} for row in to_update]
                )
                new_ids = await repository.insert_many(
                    conn, actor.tenant_id, actor.user_id, [row.cells for row in to_insert]
                )
            except asyncpg.UniqueViolationError as exc:
                raise Conflict("a reply with one of these shortcuts was made meanwhile: import again") from exc
            for row in to_insert:
                row.id = new_ids[row.cells["shortcut"].lower()]
            await activity.record(
                conn,
                actor,
                "quick_replies.imported",
                "quick_reply",
                None,
                created=[str(row.id) for row in to_insert],
                updated=[str(row.id) for row in to_update],
            )
    counts = {status: sum(row.status == status for row in rows) for status in ("created", "updated", "unchanged")}
    return QuickReplyImport(
        dry_run=dry_run,
        refused=sum(row.status == "refused" for row in rows),
        rows=[
            ImportRow(
                line=row.line,
                shortcut=str(row.cells.get("shortcut") or ""),
                status=row.status,  # type: ignore[arg-type]
                id=row.id,
                reason=row.reason,
            )
            for row in rows
        ],
        **counts,
    )


async def _refuse_unknown_references(conn: asyncpg.Connection, tenant_id: UUID, rows: list[_Row]) -> None:
    division_ids = {row.cells["division_id"] for row in rows} - {None}
    known_divisions = {d for d in division_ids if await divisions.exists(conn, tenant_id, d)}
    media_ids = list({row.cells["media_id"] for row in rows} - {None})
    known_media = await media.existing_ids(conn, tenant_id, media_ids)
    for row in rows:
        if row.cells["division_id"] is not None and row.cells["division_id"] not in known_divisions:
            row.reason = "no such division in this organisation"
        elif row.cells["media_id"] is not None and row.cells["media_id"] not in known_media:
            row.reason = "no such media file in this organisation"
