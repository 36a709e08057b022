"""The leaf predicates of automation rules, one definition each.

The compiled matcher (`engine`) and the reference interpreter (`interpreter`) both decide a
rule's fate with these functions, so that "whole word", "inside the schedule", "in the rollout"
or "in cooldown" mean one thing. What differs between the two is only how they find the rules
worth asking: the matcher through its index, the interpreter by asking every rule in turn.

Also here: the event as rules see it (`Event`, built from an outbox payload), the context of an
evaluation (`MatchContext`), and a match (`Match`).

Keywords
--------
Text and keywords are cut into tokens by `tokens`: runs of letters, digits and combining marks;
everything else (spaces, punctuation, symbols, the underscore) separates tokens. Each token is
folded: compatibility decomposition (NFKD), case folding, non-spacing marks (accents) removed;
so "Cuándo", "CUANDO" and "cuando" are one token, and "ﬁle" is "file". Ideographs, kana, Thai
and Lao letters, written without spaces between words, are one token per character, so a
keyword in those scripts matches as a run of characters anywhere. A keyword matches when its tokens occur
in the text consecutively (`contains_phrase`): "refund" matches "Refund!" and "my refund", not
"refunded"; "credit card" matches "credit-card" and "Credit  Card", not "card credit".

Regular expressions
-------------------
`message_matches` runs RE2 (linear time in the text: no pattern can stall the worker) over the
message text as written, case-sensitively unless the pattern says `(?i)`; it matches anywhere in
the text unless anchored. RE2 has no backreferences or lookaround; `validate_pattern` refuses
those, invalid patterns, and patterns too large to compile in `MAX_PATTERN_MEMORY`.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from uuid import UUID

import msgspec
import re2

if TYPE_CHECKING:
    from omnistream.automation.schemas import AutomationControl, AutomationRule, ScheduleSettings

AUTOMATION_SOURCE = "automation"
"""The outbox `source` of events that automation's own actions cause: rules never see them."""

# ------------------------------------------------------------------ the event


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """An automation event as rules see it: the conversation snapshot of its outbox payload,
    the message of an inbound message, the previous status of a status change, and the
    contact's tags when the caller fetched them (`CompiledRules.needs_contact_tags`).

    Tags are compared in their stored form: trimmed and lower-case.
    """

    event_type: str
    conversation_id: UUID
    contact_id: UUID | None = None
    channel: str | None = None
    account_id: UUID | None = None
    status: str | None = None
    assigned_agent_id: UUID | None = None
    division_id: UUID | None = None
    tags: frozenset[str] = frozenset()
    priority: str | None = None
    handled_by: str | None = None
    message_id: UUID | None = None
    message_type: str | None = None
    message_text: str | None = None
    previous_status: str | None = None
    contact_tags: frozenset[str] | None = None
    """None: not fetched. A rule that asks for contact tags then raises rather than guess."""
    source: str = ""
    """The outbox row's source; events from `AUTOMATION_SOURCE` match no rule."""

    @property
    def caused_by_automation(self) -> bool:
        return self.source == AUTOMATION_SOURCE


class _PayloadMessage(msgspec.Struct):
    id: UUID | None = None
    type: str | None = None
    text: str | None = None


class _Payload(msgspec.Struct):
    """The outbox payload: a conversation snapshot plus what the event type adds."""

    conversation_id: UUID
    contact_id: UUID | None = None
    channel: str | None = None
    account_id: UUID | None = None
    status: str | None = None
    assigned_agent_id: UUID | None = None
    division_id: UUID | None = None
    tags: list[str] | None = None
    priority: str | None = None
    handled_by: str | None = None
    message: _PayloadMessage | None = None
    previous_status: str | None = None


def event_from_payload(
    event_type: str,
    payload: Mapping[str, Any] | str | bytes,
    *,
    source: str = "",
    contact_tags: Iterable[str] | None = None,
) -> Event:
    """The Event of an outbox row: its type, its payload (decoded or JSON), its source."""
    if isinstance(payload, str | bytes):
        body = msgspec.json.decode(payload, type=_Payload)
    else:
        body = msgspec.convert(payload, _Payload)
    message = body.message
    return Event(
        event_type=event_type,
        conversation_id=body.conversation_id,
        contact_id=body.contact_id,
        channel=body.channel,
        account_id=body.account_id,
        status=body.status,
        assigned_agent_id=body.assigned_agent_id,
        division_id=body.division_id,
        tags=normalize_tags(body.tags or ()),
        priority=body.priority,
        handled_by=body.handled_by,
        message_id=message.id if message else None,
        message_type=message.type if message else None,
        message_text=message.text if message else None,
        previous_status=body.previous_status,
        contact_tags=None if contact_tags is None else normalize_tags(contact_tags),
        source=source,
    )


def normalize_tag(tag: str) -> str:
    """Tags are stored trimmed and lower-case (the contacts and conversations areas do so)."""
    return tag.strip().lower()


def normalize_tags(tags: Iterable[str]) -> frozenset[str]:
    return frozenset(t for t in map(normalize_tag, tags) if t)


@dataclass(frozen=True, slots=True)
class MatchContext:
    """What an evaluation needs besides the event.

    `now` is the instant the rules are evaluated at (schedule, snooze, pause, cooldown); the
    worker passes the event's creation time so that a retry sees what the first attempt saw.
    `in_business_hours` answers for the event's division (its override, else the tenant's
    hours): a bool, or a function of the division id that is called at most once, and only
    when a rule that could match needs it. `last_runs` maps rule id to the last time that rule
    ran for this conversation (see `CompiledRules.candidates` to fetch only what is needed).
    """

    now: datetime
    in_business_hours: bool | Callable[[UUID | None], bool] | None = None
    last_runs: Mapping[UUID, datetime] | None = None


class Match(msgspec.Struct, frozen=True):
    """A rule whose conditions hold for the event and that runs, in execution order."""

    rule: AutomationRule

    @property
    def rule_id(self) -> UUID:
        return self.rule.id


class BusinessHours:
    """The event's business-hours answer, asked for at most once."""

    __slots__ = ("_answer", "_division_id", "_source")

    def __init__(self, source: bool | Callable[[UUID | None], bool] | None, division_id: UUID | None) -> None:
        self._source = source
        self._division_id = division_id
        self._answer: bool | None = source if isinstance(source, bool) else None

    def __call__(self) -> bool:
        if self._answer is None:
            if self._source is None:
                raise ValueError("a rule needs business hours: pass in_business_hours in the MatchContext")
            self._answer = bool(self._source(self._division_id))  # type: ignore[operator]
        return self._answer


def contact_tags_of(event: Event) -> frozenset[str]:
    if event.contact_tags is None:
        raise ValueError("a rule needs the contact's tags: fetch them into Event.contact_tags")
    return event.contact_tags


# ------------------------------------------------------------------ order and gates


def priority_key(rule: AutomationRule) -> tuple[int, datetime, UUID]:
    """Execution order: higher priority first, then the older rule, then the smaller id."""
    return (-rule.priority, rule.created_at, rule.id)


def is_snoozed(rule: AutomationRule, now: datetime) -> bool:
    return rule.snoozed_until is not None and now < rule.snoozed_until


def pause_in_force(control: AutomationControl | None, now: datetime) -> bool:
    """The tenant's global pause holds until `paused_until` (for ever when that is null)."""
    return control is not None and control.is_paused and (control.paused_until is None or now < control.paused_until)


def in_cooldown(cooldown_secs: int, last_run: datetime | None, now: datetime) -> bool:
    """A rule that ran for this conversation less than `cooldown_secs` ago waits."""
    return cooldown_secs > 0 and last_run is not None and now < last_run + timedelta(seconds=cooldown_secs)


def rollout_bucket(rule_id: UUID, conversation_id: UUID) -> int:
    """0-99, fixed for a (rule, conversation): the first 8 bytes of SHA-256 of
    '<rule id>:<conversation id>' (lower-case hyphenated UUIDs), big-endian, modulo 100."""
    digest = hashlib.sha256(f"{rule_id}:{conversation_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


def in_rollout(rollout_percentage: int, rule_id: UUID, conversation_id: UUID) -> bool:
    """A rule at N% applies to the conversations whose bucket is below N."""
    if rollout_percentage >= 100:
        return True
    return rollout_percentage > 0 and rollout_bucket(rule_id, conversation_id) < rollout_percentage


# ------------------------------------------------------------------ schedule windows

MINUTES_PER_DAY = 24 * 60
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday; weekdays count 0 = Monday ... 6 = Sunday
_MINUTE = timedelta(minutes=1)


def _local_minutes(at: datetime, offset_minutes: int) -> int:
    """Whole minutes since the epoch on the clock at UTC+offset."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("a naive datetime is ambiguous; pass an aware one")
    return (at - _EPOCH) // _MINUTE + offset_minutes


def window_length_minutes(settings: ScheduleSettings) -> int:
    """From start to end hour, going forward; equal hours (or 0 to 24) are the whole day."""
    hours = (settings.end_hour_utc - settings.start_hour_utc) % 24 or 24
    return hours * 60


def schedule_active(settings: ScheduleSettings, at: datetime) -> bool:
    """Whether a rule with these schedule settings may run at `at`.

    The clock is UTC shifted by `timezone_offset_minutes` (with offset 0 the hours are UTC's,
    hence their names). A window opens at `start_hour_utc` on each active weekday of that clock
    and lasts until the next `end_hour_utc`; when the end hour is not after the start hour the
    window crosses midnight and belongs to the weekday it started on: Friday 22-06 runs from
    Friday 22:00 to Saturday 06:00. `invert` makes the rule run outside the windows instead.
    Disabled settings never stop a rule.
    """
    if not settings.enabled:
        return True
    day, minute = divmod(_local_minutes(at, settings.timezone_offset_minutes), MINUTES_PER_DAY)
    weekday = (day + _EPOCH_WEEKDAY) % 7
    start = settings.start_hour_utc * 60
    end = start + window_length_minutes(settings)
    days = settings.active_weekdays
    inside = (weekday in days and start <= minute < end) or (
        end > MINUTES_PER_DAY and (weekday - 1) % 7 in days and minute < end - MINUTES_PER_DAY
    )
    return inside != settings.invert


def schedule_windows(settings: ScheduleSettings, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """The stretches of [start, end) in which `schedule_active` holds, in order, in UTC.

    The answer changes only on whole hours of the shifted clock, so it is decided hour by hour.
    """
    if start >= end:
        return []
    if not settings.enabled:
        return [(start.astimezone(UTC), end.astimezone(UTC))]
    offset = settings.timezone_offset_minutes
    first_hour = _local_minutes(start, offset) // 60
    windows: list[tuple[datetime, datetime]] = []
    hour = first_hour
    while True:
        slot_start = _EPOCH + timedelta(minutes=hour * 60 - offset)
        if slot_start >= end:
            break
        slot_end = slot_start + timedelta(hours=1)
        if schedule_active(settings, slot_start):
            lo, hi = max(slot_start, start.astimezone(UTC)), min(slot_end, end.astimezone(UTC))
            if windows and windows[-1][1] == lo:
                windows[-1] = (windows[-1][0], hi)
            else:
                windows.append((lo, hi))
        hour += 1
    return windows


def next_schedule_start(settings: ScheduleSettings, at: datetime) -> datetime | None:
    """When the schedule next lets the rule run, at or after `at`; None if it never does."""
    windows = schedule_windows(settings, at, at + timedelta(days=8))
    return windows[0][0] if windows else None


# ------------------------------------------------------------------ keywords

# Combining marks of every block that has any (none lie between U+20000 and U+E0000).
_MARK_CODEPOINTS = [
    cp
    for block in (range(0x300, 0x20000), range(0xE0000, 0xE1000))
    for cp in block
    if unicodedata.category(chr(cp)) in ("Mn", "Mc", "Me")
]
_STRIP_MARKS = {cp: None for cp in _MARK_CODEPOINTS if unicodedata.category(chr(cp)) == "Mn"}


def _class_of(codepoints: list[int]) -> str:
    ranges: list[list[int]] = []
    for cp in codepoints:
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    return "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)


# Scripts written without spaces between words: one token per character.
_UNSPACED = "\u0e00-\u0e7f\u0e80-\u0eff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_WORD_WITH_MARKS = re.compile(f"[\\w{_class_of(_MARK_CODEPOINTS)}]+")
_PLAIN_WORD = re.compile(r"[^\W_]+")
_FIRST_UNSPACED = "\u0e00"
_PIECE = re.compile(f"[{_UNSPACED}]|[^{_UNSPACED}]+")
_NEEDS_MARKS = re.compile(r"[\u0300-\u036f\u0483-\u0489\u0590-\U0010ffff]")
"""Text with a combining mark or a character from U+0590 on: the careful path of `tokens`."""
_ASCII_FOLD = bytes(c + 32 if 65 <= c <= 90 else c if 48 <= c <= 57 or 97 <= c <= 122 else 32 for c in range(256))


def _fold(word: str) -> list[str]:
    """One word (letters, digits, marks) as its folded tokens."""
    if word.isascii():
        return [word.lower()] if "_" not in word else word.lower().replace("_", " ").split()
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", word).casefold()).translate(_STRIP_MARKS)
    if folded.isalnum() and max(folded) < _FIRST_UNSPACED:
        return [folded]
    words = _WORD_WITH_MARKS.findall(folded)
    return [piece for w in words for part in w.split("_") if part for piece in _PIECE.findall(part)]


def _careful_tokens(text: str) -> list[str]:
    """`tokens` without its shortcuts: what they must agree with."""
    words = _WORD_WITH_MARKS.findall(unicodedata.normalize("NFC", text))
    return [token for word in words for token in _fold(word)]


def _latin1_fold_table() -> bytes:
    """Latin-1 to folded ASCII, byte for byte, where `_fold` agrees: a separator to a space, a
    letter or digit that folds to one ASCII letter or digit to that; any other byte (ß, æ, ¼:
    folds of several characters or none in ASCII) stays non-ASCII and sends the text the long way."""
    table = bytearray(_ASCII_FOLD[:128] + bytes(range(128, 256)))
    for code in range(128, 256):
        char = chr(code)
        if not _PLAIN_WORD.fullmatch(char):
            table[code] = 32
            continue
        folded = _fold(char)
        if len(folded) == 1 and len(folded[0]) == 1 and folded[0].isascii():
            table[code] = ord(folded[0])
    return bytes(table)


_LATIN1_FOLD = _latin1_fold_table()


def tokens(text: str) -> list[str]:
    """The folded tokens of a text, in order (see the module docstring)."""
    if text.isascii():
        return text.encode().translate(_ASCII_FOLD).decode().split()
    try:
        latin = text.encode("latin-1").translate(_LATIN1_FOLD)
    except UnicodeEncodeError:
        pass
    else:
        if latin.isascii():
            return latin.decode().split()
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    words = _WORD_WITH_MARKS.findall(text) if _NEEDS_MARKS.search(text) else _PLAIN_WORD.findall(text)
    out: list[str] = []
    for word in words:
        if word.isascii() and "_" not in word:
            out.append(word.lower())
        else:
            out.extend(_fold(word))
    return out


@lru_cache(maxsize=65536)
def keyword_phrase(keyword: str) -> tuple[str, ...]:
    """A keyword or phrase as the tokens a text must contain consecutively; () never matches."""
    return tuple(tokens(keyword))


def contains_phrase(text_tokens: list[str], phrase: tuple[str, ...]) -> bool:
    """Whether the phrase's tokens occur in the text's, one after the other."""
    size = len(phrase)
    if size == 0:
        return False
    first = phrase[0]
    if size == 1:
        return first in text_tokens
    wanted = list(phrase)
    start = 0
    for _ in range(text_tokens.count(first)):
        start = text_tokens.index(first, start)
        if text_tokens[start : start + size] == wanted:
            return True
        start += 1
    return False


def contains_any_keyword(text_tokens: list[str], keywords: Iterable[str]) -> bool:
    return any(contains_phrase(text_tokens, keyword_phrase(k)) for k in keywords)


# ------------------------------------------------------------------ regular expressions

MAX_PATTERN_LENGTH = 500
MAX_PATTERN_MEMORY = 1 << 20
"""Bytes RE2 may use for one compiled pattern; a larger one is refused when saved."""


def _re2_options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False
    options.max_mem = MAX_PATTERN_MEMORY
    options.never_capture = True  # a yes or no is all a condition needs
    return options


@lru_cache(maxsize=4096)
def compile_pattern(pattern: str) -> Any:
    """The RE2 program of a `message_matches` pattern; ValueError if it is not one."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ValueError(f"the regular expression is longer than {MAX_PATTERN_LENGTH} characters")
    try:
        return re2.compile(pattern, _re2_options())
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        if "too large" in reason or "out of memory" in reason:
            raise ValueError("the regular expression is too large") from None
        raise ValueError(f"invalid regular expression: {reason}") from None


def validate_pattern(pattern: str) -> None:
    """Raise ValueError, with a message a user can act on, unless RE2 accepts the pattern."""
    compile_pattern(pattern)


def compiles(pattern: str) -> bool:
    try:
        compile_pattern(pattern)
    except ValueError:
        return False
    return True


def _never(text: str) -> bool:
    return False


@lru_cache(maxsize=4096)
def pattern_search(pattern: str) -> Callable[[str], bool]:
    """A function telling whether RE2 finds the pattern in a text.

    The binding's `search` builds match objects and maps byte offsets back to characters;
    a condition needs neither, so this asks RE2 directly when the binding allows it (its
    `_regexp.Match`), and otherwise goes through `search`. A pattern RE2 refuses (saved
    before a change of limits) matches nothing rather than failing every evaluation.
    """
    try:
        program = compile_pattern(pattern)
    except ValueError:
        return _never
    inner = getattr(program, "_regexp", None)
    anchor = getattr(getattr(re2, "_Anchor", None), "UNANCHORED", None)
    null_span = getattr(re2, "_NULL_SPAN", None)
    if inner is None or anchor is None or null_span is None:
        return lambda text: program.search(text) is not None
    match = inner.Match

    def search(text: str) -> bool:
        data = text.encode()
        return match(anchor, data, 0, len(data))[0] != null_span

    return search


SET_MEMORY = 64 << 20
"""Bytes RE2 may use for a set of all of a trigger's patterns (allocated as the search needs it)."""


def pattern_set(patterns: list[str]) -> Any | None:
    """An RE2 set of patterns RE2 accepts: `Match(text)` gives the indexes of those that match
    (searching, like `pattern_matches`), or None when none does. None if RE2 cannot build it.

    A set runs RE2's DFA only; when its memory runs short it starts its cache afresh and goes
    on (it has no other engine to fall back to), so it stays linear in the text.
    """
    options = _re2_options()
    options.max_mem = SET_MEMORY
    found = re2.Set.SearchSet(options)
    try:
        for pattern in patterns:
            found.Add(pattern)
        found.Compile()
    except re2.error:
        return None
    return found


def pattern_matches(pattern: str, text: str | None) -> bool:
    """Whether the message text matches a `message_matches` pattern (no text: no match)."""
    return text is not None and pattern_search(pattern)(text)
