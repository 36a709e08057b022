"""Campaigns: one message sent to many contacts through one integration account.

A campaign is a draft while it is written and its recipients gathered (by contact ids, by tags,
or from a CSV file of phone numbers whose other columns fill the message's variables); only a
draft changes. Sending starts it now or schedules it; the worker then sends it in batches.

Each batch is one transaction: it takes the account's send budget (`campaign_pacing`, a token
bucket at the account's messages per second, shared by the account's campaigns and locked, so
workers side by side keep to the rate together), claims the next pending recipients with
FOR UPDATE SKIP LOCKED, finds or opens each contact's conversation on the account, queues the
messages and marks each recipient with its message. A worker that dies before committing leaves
nothing behind but released locks: the next batch claims the same recipients, and each is sent
exactly once. After commit the messages' delivery is enqueued (the messages sweeper re-enqueues
any that were lost), and the normal delivery path sends them. Contacts who opted out are skipped.
"""

from __future__ import annotations

import asyncio
import csv
import io
import math
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import msgspec
import structlog
from arq import ArqRedis
from litestar.datastructures import UploadFile

from omnistream.activity import service as activity
from omnistream.campaigns import repository
from omnistream.campaigns.schemas import (
    Campaign,
    CampaignCreate,
    CampaignList,
    CampaignSend,
    CampaignUpdate,
    RecipientList,
    RecipientRow,
    RecipientsAdd,
    RecipientsAdded,
)
from omnistream.config import Settings
from omnistream.contacts import service as contacts
from omnistream.conversations import service as conversations
from omnistream.db import Database
from omnistream.errors import Conflict, PayloadTooLarge, Unprocessable, not_found
from omnistream.integrations import service as integrations
from omnistream.kit.pagination import Cursor, ListParams, page_of
from omnistream.messages import service as messages
from omnistream.quick_replies.service import unescape_cell
from omnistream.security.principal import Actor
from omnistream.wa_templates import service as wa_templates

log = structlog.get_logger(__name__)

DEFAULT_MESSAGES_PER_SECOND = 80
"""WhatsApp Cloud API's standard throughput per phone number; an account's `messages_per_second`
setting changes it."""
MAX_MESSAGES_PER_SECOND = 10_000
MAX_BATCH = 500
MAX_RECIPIENTS = 250_000
MAX_CSV_BYTES = 5 * 1024 * 1024
MAX_CSV_ROWS = 50_000
LONGEST_SCHEDULE = timedelta(days=365)
DUE_PER_TICK = 100
SEND_JOB = "send_campaigns"
BUILT_IN_VARIABLES = ("contact.name", "contact.phone")
_VARIABLE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_COLUMN = re.compile(r"^[a-z][a-z0-9_]{0,49}$")
_PHONE_SEPARATORS = re.compile(r"[ ()./-]")
OPTED_OUT = "opted_out"
ACCOUNT_GONE = "account_not_connected"
TEMPLATE_GONE = "template_not_sendable"


# ---------------------------------------------------------------- rules


def variables_of(text: str | None, template: dict[str, Any] | None) -> list[str]:
    """The variables the message names, besides the built-in ones."""
    found: set[str] = set()

    def collect(value: Any) -> None:
        if isinstance(value, str):
            found.update(m.group(1) for m in _VARIABLE.finditer(value))
        elif isinstance(value, dict):
            for item in value.values():
                collect(item)
        elif isinstance(value, list):
            for item in value:
                collect(item)

    collect(text)
    collect((template or {}).get("components"))
    return sorted(found - set(BUILT_IN_VARIABLES))


def render(value: Any, values: dict[str, str]) -> Any:
    """The message with each recipient's values in place of its variables."""
    if isinstance(value, str):
        return _VARIABLE.sub(lambda m: values.get(m.group(1), m.group(0)), value)
    if isinstance(value, dict):
        return {k: render(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, values) for v in value]
    return value


def whatsapp_number(raw: str) -> str | None:
    """A phone number as WhatsApp names it (its digits, country code first), or None."""
    digits = _PHONE_SEPARATORS.sub("", raw.strip())
    digits = digits.removeprefix("+")
    if digits.startswith("00"):
        digits = digits[2:]
    if not digits.isascii() or not digits.isdigit() or not 7 <= len(digits) <= 15 or digits.startswith("0"):
        return None
    return digits


def rate_of(account: integrations.ProviderAccount) -> int:
    raw = account.settings.get("messages_per_second")
    if isinstance(raw, int) and not isinstance(raw, bool) and 1 <= raw <= MAX_MESSAGES_PER_SECOND:
        return raw
    return DEFAULT_MESSAGES_PER_SECOND


async def _account(
    conn: Any, settings: Settings, tenant_id: UUID, channel: str, account_id: UUID
) -> integrations.ProviderAccount:
    account = await integrations.sending_account(conn, settings, tenant_id, channel, account_id)
    if account is None or account.id != account_id:
        raise Unprocessable(f"no {channel} account of this organisation has this id", field="account_id")
    if not account.active:
        raise Unprocessable("the account is disconnected: connect it again first", field="account_id")
    return account


async def _check_message(
    conn: Any, tenant_id: UUID, channel: str, text: str | None, template: dict[str, Any] | None
) -> None:
    if channel == "whatsapp":
        if template is None:
            raise Unprocessable(
                "a WhatsApp campaign sends an approved template: WhatsApp lets a business start a "
                "conversation only with one (GET /api/wa-templates?status=APPROVED)",
                field="template",
            )
        if text is not None:
            raise Unprocessable("a WhatsApp campaign sends a template, not text", field="text")
        await wa_templates.validate_template_send(
            conn, tenant_id, template["name"], template["language"], template["components"]
        )
    else:
        if template is not None:
            raise Unprocessable("templates are WhatsApp's: send text on this channel", field="template")
        if text is None:
            raise Unprocessable(f"a {channel} campaign needs its text", field="text")
    names = variables_of(text, template)
    bad = [n for n in names if not _COLUMN.match(n)]
    if bad:
        raise Unprocessable(
            f"unknown variables: {', '.join(bad)}; use contact.name, contact.phone or a CSV column's name "
            "(lowercase letters, digits and _)",
            field="template" if template is not None else "text",
            unknown_variables=bad,
        )


def _campaign(row: asyncpg.Record, progress: Any = None) -> Campaign:
    return Campaign(
        **{k: row[k] for k in _CAMPAIGN_COLUMNS},
        variables=variables_of(row["text"], row["template"]),
        progress=progress,
    )


_CAMPAIGN_COLUMNS = (
    "id",
    "name",
    "channel",
    "account_id",
    "message_type",
    "text",
    "template",
    "status",
    "send_at",
    "started_at",
    "completed_at",
    "cancelled_at",
    "created_by",
    "created_at",
    "updated_at",
)


async def _shown(conn: Any, tenant_id: UUID, campaign_id: UUID) -> Campaign:
    row = await repository.get(conn, tenant_id, campaign_id)
    if row is None:
        raise not_found("campaign")
    return _campaign(row, await repository.progress(conn, tenant_id, campaign_id))


async def _locked_draft(conn: asyncpg.Connection, tenant_id: UUID, campaign_id: UUID, doing: str) -> asyncpg.Record:
    row = await repository.lock(conn, tenant_id, campaign_id)
    if row is None:
        raise not_found("campaign")
    if row["status"] != "draft":
        raise Conflict(f"the campaign is {row['status']}: only a draft can {doing}")
    return row


# ---------------------------------------------------------------- the API


async def list_campaigns(
    db: Database, actor: Actor, params: ListParams, *, status: str | None, channel: str | None
) -> CampaignList:
    async with db.read(actor.tenant_id) as conn:
        rows, total = await repository.list_page(conn, actor.tenant_id, params, {"status": status, "channel": channel})
    rows, next_cursor = page_of(rows, params, lambda r: Cursor(r["created_at"], r["id"]))
    return CampaignList(campaigns=[_campaign(r) for r in rows], next_cursor=next_cursor, total=total)


async def get_campaign(db: Database, actor: Actor, campaign_id: UUID) -> Campaign:
    async with db.read(actor.tenant_id) as conn:
        return await _shown(conn, actor.tenant_id, campaign_id)


async def create_campaign(db: Database, settings: Settings, actor: Actor, data: CampaignCreate) -> Campaign:
    template = msgspec.to_builtins(data.template) if data.template is not None else None
    async with db.tenant(actor.tenant_id) as conn:
        await _account(conn, settings, actor.tenant_id, data.channel, data.account_id)
        await _check_message(conn, actor.tenant_id, data.channel, data.text, template)
        campaign_id = await repository.insert(
            conn,
            actor.tenant_id,
            name=data.name.strip(),
            channel=data.channel,
            account_id=data.account_id,
            message_type="template" if template is not None else "text",
            text=data.text,
            template=template,
            created_by=actor.user_id,
        )
        await activity.record(
            conn, actor, "campaign.created", "campaign", campaign_id, name=data.name, channel=data.channel
        )
        return await _shown(conn, actor.tenant_id, campaign_id)


async def update_campaign(
    db: Database, settings: Settings, actor: Actor, campaign_id: UUID, data: CampaignUpdate
) -> Campaign:
    changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET}
    async with db.tenant(actor.tenant_id) as conn:
        current = await _locked_draft(conn, actor.tenant_id, campaign_id, "be changed")
        merged = {
            "name": changes.get("name", current["name"]).strip(),
            "account_id": changes.get("account_id", current["account_id"]),
            "text": changes.get("text", current["text"]),
            "template": msgspec.to_builtins(changes["template"]) if "template" in changes else current["template"],
        }
        if "account_id" in changes:
            await _account(conn, settings, actor.tenant_id, current["channel"], merged["account_id"])
        if "text" in changes or "template" in changes:
            await _check_message(conn, actor.tenant_id, current["channel"], merged["text"], merged["template"])
        merged["message_type"] = "template" if merged["template"] is not None else "text"
        await repository.update(conn, actor.tenant_id, campaign_id, **merged)
        if changes:
            await activity.record(conn, actor, "campaign.updated", "campaign", campaign_id, changed=sorted(changes))
        return await _shown(conn, actor.tenant_id, campaign_id)


async def delete_campaign(db: Database, actor: Actor, campaign_id: UUID) -> None:
    async with db.tenant(actor.tenant_id) as conn:
        row = await _locked_draft(conn, actor.tenant_id, campaign_id, "be deleted")
        await repository.delete(conn, actor.tenant_id, campaign_id)
        await activity.record(conn, actor, "campaign.deleted", "campaign", campaign_id, name=row["name"])


async def list_recipients(
    db: Database, actor: Actor, campaign_id: UUID, params: ListParams, status: str | None
) -> RecipientList:
    async with db.read(actor.tenant_id) as conn:
        if await repository.get(conn, actor.tenant_id, campaign_id) is None:
            raise not_found("campaign")
        rows, total = await repository.list_recipients(conn, actor.tenant_id, campaign_id, params, status)
    rows, next_cursor = page_of(rows, params)
    return RecipientList(recipients=rows, next_cursor=next_cursor, total=total)


def _needs_no_columns(row: asyncpg.Record) -> None:
    names = variables_of(row["text"], row["template"])
    if names:
        raise Unprocessable(
            f"the message names the variables {', '.join(names)}: add its recipients from a CSV file with those "
            "columns",
            field="contact_ids",
        )


async def _add(
    conn: asyncpg.Connection, actor: Actor, campaign_id: UUID, contact_ids: list[UUID], variables: list[dict[str, str]]
) -> tuple[set[UUID], int, int]:
    """Add the contacts (in order): those added, how many of them opted out, the recipients now."""
    before = await repository.recipient_count(conn, actor.tenant_id, campaign_id)
    if before + len(contact_ids) > MAX_RECIPIENTS:
        added_at_most = MAX_RECIPIENTS - before
        raise Unprocessable(
            f"a campaign has at most {MAX_RECIPIENTS} recipients: {before} now, {len(contact_ids)} more would pass "
            f"it (at most {added_at_most} more)",
            field="contact_ids",
        )
    added = await repository.add_recipients(conn, actor.tenant_id, campaign_id, contact_ids, variables)
    opted_out = len(await contacts.opted_out_ids(conn, actor.tenant_id, list(added))) if added else 0
    if added:
        await activity.record(conn, actor, "campaign.recipients_added", "campaign", campaign_id, added=len(added))
    return added, opted_out, before + len(added)


async def add_recipients(db: Database, actor: Actor, campaign_id: UUID, data: RecipientsAdd) -> RecipientsAdded:
    if (data.contact_ids is None) == (data.filter is None):
        raise Unprocessable("give either contact_ids or filter", field="contact_ids")
    async with db.tenant(actor.tenant_id) as conn:
        row = await _locked_draft(conn, actor.tenant_id, campaign_id, "take recipients")
        _needs_no_columns(row)
        if data.contact_ids is not None:
            wanted = list(dict.fromkeys(data.contact_ids))
            reachable = await contacts.reachable_ids(
                conn, actor.tenant_id, row["channel"], ids=wanted, limit=len(wanted)
            )
            unknown = set(wanted) - await contacts.existing_ids(conn, actor.tenant_id, wanted)
            if unknown:
                raise Unprocessable(
                    f"no such contacts in this organisation: {', '.join(sorted(map(str, unknown))[:5])}",
                    field="contact_ids",
                )
            found = set(reachable)
            chosen = [c for c in wanted if c in found]
            refused = len(wanted) - len(chosen)
            duplicates = len(data.contact_ids) - len(wanted)
        else:
            assert data.filter is not None
            before = await repository.recipient_count(conn, actor.tenant_id, campaign_id)
            chosen = await contacts.reachable_ids(
                conn,
                actor.tenant_id,
                row["channel"],
                tags=data.filter.tags,
                written_on=data.filter.channel,
                limit=MAX_RECIPIENTS - before + 1,
            )
            refused, duplicates = 0, 0
        added, opted_out, total = await _add(conn, actor, campaign_id, chosen, [{}] * len(chosen))
    return RecipientsAdded(
        added=len(added),
        duplicates=duplicates + len(chosen) - len(added),
        refused=refused,
        opted_out=opted_out,
        total=total,
        rows=[],
    )


class _CsvRow(msgspec.Struct):
    line: int
    phone: str
    number: str | None = None
    name: str = ""
    variables: dict[str, str] = {}
    status: str = "added"
    reason: str | None = None
    contact_id: UUID | None = None


async def _read_upload(upload: UploadFile) -> str:
    raw = await upload.read(MAX_CSV_BYTES + 1)
    if len(raw) > MAX_CSV_BYTES:
        raise PayloadTooLarge(f"the file is larger than the {MAX_CSV_BYTES} bytes allowed")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Unprocessable("the file is not UTF-8 text", field="file") from exc


def _csv_header(record: list[str], needed: list[str]) -> list[str]:
    columns = [cell.strip().lower() for cell in record]
    if "phone" not in columns:
        raise Unprocessable("the header row needs a phone column", field="file")
    if len(set(columns)) != len(columns):
        raise Unprocessable("a column is named twice in the header", field="file")
    bad = [c for c in columns if not _COLUMN.match(c)]
    if bad:
        raise Unprocessable(
            f"column names are lowercase letters, digits and _: not {', '.join(map(repr, bad))}", field="file"
        )
    missing = [n for n in needed if n not in columns]
    if missing:
        raise Unprocessable(
            f"the message names the variables {', '.join(missing)}, which the file has no column for", field="file"
        )
    return columns


def _parse_csv(text: str, needed: list[str]) -> list[_CsvRow]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[_CsvRow] = []
    try:
        first = next(reader, None)
        if first is None:
            raise Unprocessable("the file is empty: it needs a header row with a phone column", field="file")
        columns = _csv_header(first, needed)
        line = reader.line_num + 1
        for record in reader:
            start, line = line, reader.line_num + 1
            if not record or record == [""]:
                continue
            if len(rows) == MAX_CSV_ROWS:
                raise Unprocessable(f"the file has more than {MAX_CSV_ROWS} rows", field="file")
            rows.append(_csv_row(start, columns, record, needed))
    except csv.Error as exc:
        raise Unprocessable(f"line {reader.line_num}: not valid CSV ({exc})", field="file") from exc
    return rows


def _csv_row(line: int, columns: list[str], record: list[str], needed: list[str]) -> _CsvRow:
    cells = {name: unescape_cell(value).strip() for name, value in zip(columns, record, strict=False)}
    row = _CsvRow(line=line, phone=cells.get("phone", "")[:50])
    if len(record) != len(columns):
        row.status, row.reason = "refused", f"the row has {len(record)} cells, the header {len(columns)}"
        return row
    if any("\x00" in value for value in cells.values()):
        row.status, row.reason = "refused", "a cell holds a NUL character"
        return row
    row.number = whatsapp_number(cells["phone"])
    if row.number is None:
        row.status, row.reason = "refused", "not a phone number: 7 to 15 digits with the country code"
        return row
    empty = [n for n in needed if not cells.get(n)]
    if empty:
        row.status, row.reason = "refused", f"no value for {', '.join(empty)}"
        return row
    too_long = [n for n, v in cells.items() if len(v) > 1024]
    if too_long:
        row.status, row.reason = "refused", f"longer than 1024 characters: {', '.join(too_long)}"
        return row
    row.name = cells.get("name", "")[:200]
    row.variables = {k: v for k, v in cells.items() if k != "phone"}
    return row


async def import_recipients(db: Database, actor: Actor, campaign_id: UUID, upload: UploadFile) -> RecipientsAdded:
    """WhatsApp campaigns: recipients from a CSV file of phone numbers; the other columns fill the
    message's variables. Each row answers added, duplicate (named before, or a recipient already)
    or refused, with why."""
    text = await _read_upload(upload)
    async with db.tenant(actor.tenant_id) as conn:
        row = await _locked_draft(conn, actor.tenant_id, campaign_id, "take recipients")
        if row["channel"] != "whatsapp":
            raise Unprocessable("a file of phone numbers fills WhatsApp campaigns only", field="file")
        rows = _parse_csv(text, variables_of(row["text"], row["template"]))
        first_line: dict[str, int] = {}
        for item in rows:
            if item.status == "added" and item.number is not None:
                if item.number in first_line:
                    item.status, item.reason = "duplicate", f"the number repeats line {first_line[item.number]}"
                else:
                    first_line[item.number] = item.line
        valid = [item for item in rows if item.status == "added"]
        found = await contacts.whatsapp_contacts(conn, actor.tenant_id, {i.number: i.name for i in valid if i.number})
        for item in valid:
            item.contact_id = found[item.number or ""]
        added, opted_out, total = await _add(
            conn, actor, campaign_id, [i.contact_id for i in valid if i.contact_id], [i.variables for i in valid]
        )
        for item in valid:
            if item.contact_id not in added:
                item.status, item.reason = "duplicate", "already a recipient of this campaign"
    return RecipientsAdded(
        added=sum(i.status == "added" for i in rows),
        duplicates=sum(i.status == "duplicate" for i in rows),
        refused=sum(i.status == "refused" for i in rows),
        opted_out=opted_out,
        total=total,
        rows=[
            RecipientRow(line=i.line, phone=i.phone, status=i.status, contact_id=i.contact_id, reason=i.reason)  # type: ignore[arg-type]
            for i in rows
        ],
    )


async def clear_recipients(db: Database, actor: Actor, campaign_id: UUID) -> int:
    async with db.tenant(actor.tenant_id) as conn:
        await _locked_draft(conn, actor.tenant_id, campaign_id, "lose its recipients")
        removed = await repository.clear_recipients(conn, actor.tenant_id, campaign_id)
        if removed:
            await activity.record(conn, actor, "campaign.recipients_cleared", "campaign", campaign_id, removed=removed)
        return removed


async def send_campaign(
    db: Database, arq: ArqRedis, settings: Settings, actor: Actor, campaign_id: UUID, data: CampaignSend, now: datetime
) -> Campaign:
    send_at = data.send_at
    if send_at is not None and send_at <= now:
        raise Unprocessable("send_at must be in the future; leave it out to send now", field="send_at")
    if send_at is not None and send_at > now + LONGEST_SCHEDULE:
        raise Unprocessable("a campaign is scheduled at most a year ahead", field="send_at")
    async with db.tenant(actor.tenant_id) as conn:
        row = await _locked_draft(conn, actor.tenant_id, campaign_id, "be sent")
        if await repository.recipient_count(conn, actor.tenant_id, campaign_id) == 0:
            raise Unprocessable("the campaign has no recipients yet", field="id")
        await _account(conn, settings, actor.tenant_id, row["channel"], row["account_id"])
        # Checked again: the template may have been paused or deleted since the draft was written.
        await _check_message(conn, actor.tenant_id, row["channel"], row["text"], row["template"])
        await repository.schedule(conn, actor.tenant_id, campaign_id, "scheduled", send_at or now)
        if send_at is None:
            await repository.mark_sending(conn, actor.tenant_id, campaign_id, now)
        await activity.record(
            conn,
            actor,
            "campaign.sent" if send_at is None else "campaign.scheduled",
            "campaign",
            campaign_id,
            send_at=(send_at or now).isoformat(),
        )
        campaign = await _shown(conn, actor.tenant_id, campaign_id)
    if send_at is None:
        await _nudge(arq)
    return campaign


async def _nudge(arq: ArqRedis) -> None:
    """After commit: start sending now rather than at the worker's next tick (which would anyway)."""
    try:
        await arq.enqueue_job(SEND_JOB)
    except Exception as exc:
        log.warning("campaign job not enqueued", error=str(exc))


async def cancel_campaign(db: Database, actor: Actor, campaign_id: UUID, now: datetime) -> Campaign:
    async with db.tenant(actor.tenant_id) as conn:
        row = await repository.lock(conn, actor.tenant_id, campaign_id)
        if row is None:
            raise not_found("campaign")
        if row["status"] not in ("scheduled", "sending"):
            raise Conflict(
                f"the campaign is {row['status']}: only a scheduled or sending campaign can be cancelled"
                + (" (delete a draft instead)" if row["status"] == "draft" else "")
            )
        withdrawn: list[UUID] = []
        after = None
        while batch := await repository.queued_message_ids(conn, actor.tenant_id, campaign_id, after, MAX_BATCH):
            withdrawn += await messages.withdraw_queued(conn, actor.tenant_id, batch, "the campaign was cancelled")
            after = batch[-1]
        cancelled = await repository.cancel_pending(conn, actor.tenant_id, campaign_id, withdrawn)
        await repository.cancel(conn, actor.tenant_id, campaign_id, now)
        await activity.record(conn, actor, "campaign.cancelled", "campaign", campaign_id, cancelled=cancelled)
        return await _shown(conn, actor.tenant_id, campaign_id)


# ---------------------------------------------------------------- the worker


async def send_batch(
    db: Database, arq: ArqRedis, settings: Settings, tenant_id: UUID, campaign_id: UUID, now: datetime
) -> int:
    """One batch of a due campaign, as the account's budget allows at `now`: the recipients handed
    to delivery or skipped (0 when there is nothing to do now)."""
    async with db.tenant(tenant_id) as conn:
        campaign = await repository.lock_for_batch(conn, tenant_id, campaign_id)
        if campaign is None or campaign["send_at"] > now:
            return 0  # another worker has it, or it is not due
        await repository.mark_sending(conn, tenant_id, campaign_id, now)
        account = await integrations.sending_account(
            conn, settings, tenant_id, campaign["channel"], campaign["account_id"]
        )
        usable = account is not None and account.id == campaign["account_id"] and account.active
        rate = rate_of(account) if usable and account is not None else MAX_MESSAGES_PER_SECOND
        burst_start = now - timedelta(seconds=1)
        paced_until = await repository.lock_pacing(conn, tenant_id, campaign["account_id"], burst_start)
        if paced_until is None:
            return 0  # another worker is spending this account's budget
        start = max(paced_until, burst_start)
        budget = min(MAX_BATCH, math.floor((now - start).total_seconds() * rate + 1e-9))
        if budget <= 0:
            return 0
        claimed = await repository.claim_pending(conn, tenant_id, campaign_id, budget)
        if not claimed:
            await repository.finish_if_done(conn, tenant_id, campaign_id, now)
            return 0
        if not usable:
            await repository.mark_skipped(conn, tenant_id, [r["id"] for r in claimed], ACCOUNT_GONE)
            await repository.finish_if_done(conn, tenant_id, campaign_id, now)
            return len(claimed)
        message_ids = await _queue(conn, tenant_id, campaign, claimed, now)
        await repository.spend_pacing(
            conn, tenant_id, campaign["account_id"], start + timedelta(seconds=len(message_ids) / rate)
        )
        await repository.finish_if_done(conn, tenant_id, campaign_id, now)
    await asyncio.gather(*(messages.enqueue_delivery(arq, tenant_id, m) for m in message_ids))
    return len(claimed)


async def _queue(
    conn: asyncpg.Connection, tenant_id: UUID, campaign: asyncpg.Record, claimed: list[asyncpg.Record], now: datetime
) -> list[UUID]:
    """Queue the claimed recipients' messages, skipping those who opted out: the message ids."""
    opted_out = [r["id"] for r in claimed if r["opted_out"]]
    if opted_out:
        await repository.mark_skipped(conn, tenant_id, opted_out, OPTED_OUT)
    sending = [r for r in claimed if not r["opted_out"]]
    if not sending:
        return []
    template = campaign["template"]
    if template is not None:
        try:
            # Once a batch, as a single message is checked: the template may have been paused since.
            components = await wa_templates.validate_template_send(
                conn, tenant_id, template["name"], template["language"], template["components"]
            )
        except Unprocessable:
            await repository.mark_skipped(conn, tenant_id, [r["id"] for r in sending], TEMPLATE_GONE)
            return []
        template = {**template, "components": components}
    threads = await conversations.open_threads(
        conn, tenant_id, campaign["channel"], campaign["account_id"], [r["contact_id"] for r in sending], now
    )
    items = [
        _outbound(
            campaign["text"],
            template,
            threads[r["contact_id"]],
            {"contact.name": r["name"], "contact.phone": r["phone"] or "", **r["variables"]},
        )
        for r in sending
    ]
    ids = await messages.queue_outbound_many(conn, tenant_id, campaign["channel"], items, source="campaign", now=now)
    queued = [(r["id"], ids[threads[r["contact_id"]]["id"]], threads[r["contact_id"]]["id"]) for r in sending]
    await repository.mark_queued(conn, tenant_id, queued, now)
    return [q[1] for q in queued]


def _outbound(
    text: str | None, template: dict[str, Any] | None, thread: asyncpg.Record, values: dict[str, str]
) -> messages.BulkOutbound:
    if template is not None:
        return messages.BulkOutbound(
            conversation=thread, type="template", text=None, content={"template": render(template, values)}
        )
    return messages.BulkOutbound(conversation=thread, type="text", text=render(text, values), content={})


async def send_due(
    db: Database, arq: ArqRedis, settings: Settings, clock: Callable[[], datetime], *, seconds: float
) -> int:
    """Batches of every due campaign, for about `seconds` (a worker's tick): recipients handled."""
    started = clock()
    handled = 0
    async with db.anonymous() as conn:
        due = await repository.campaigns_due(conn, started, DUE_PER_TICK)
    busy = True
    while busy and (clock() - started).total_seconds() < seconds:
        busy = False
        for row in due:
            done = await send_batch(db, arq, settings, row["tenant_id"], row["campaign_id"], clock())
            handled += done
            busy = busy or done > 0
    return handled
