"""The rule matcher: a tenant's rules compiled into an index, one event matched in memory.

    compiled = compile_rules(rules, control)          # on every change of a rule or the control
    compiled.match(event, MatchContext(now, ...))     # -> [Match], in execution order

Semantics (the reference interpreter, `interpreter.py`, spells out the same, one rule at a time):

* Only rules of the event's trigger type are considered; events caused by automation's own
  actions (outbox source "automation") match nothing, so rules cannot trigger each other in a
  loop.
* Rules run in priority order: higher `priority` first; equal priorities by `created_at`, the
  older first; then by `id`.
* A rule runs when all of these hold: it `is_active`; it is not snoozed (`snoozed_until` is
  null or not after now); the tenant is not paused (`is_paused` with `paused_until` null or
  after now; the pause ends by itself at `paused_until`); its `schedule_settings` let it run now
  (`predicates.schedule_active`); the conversation falls in its rollout (a stable bucket 0-99
  of rule and conversation below `rollout_percentage`, `predicates.rollout_bucket`); all its
  conditions hold (`schemas.RuleConditions`); and it is not in cooldown: it did not run for
  this conversation less than `cooldown_secs` ago (the caller says when it last ran).
* A rule that runs with `stop_on_match` ends the evaluation: no rule after it runs. A rule
  held back by anything above, cooldown included, does not stop the evaluation.

The index (after the counting and k-index families of Boolean-expression indexes, with
bitsets for the postings). A rule is one conjunction of conditions, or, with `any_of`, one
conjunction per set (its own conditions and that set's), side by side. The conjunctions of one
trigger type get bit positions in priority order, the first the highest bit, so the next rule
to decide is always the top bit, which Python finds in constant time. Each indexable condition
is a dimension: division, channel, status, priority, previous status, assigned or not,
conversation tags, contact tags, message keywords, business hours and the regular expression.
For each dimension and each value an event can have, a big integer holds the conjunctions that
admit the value: those that list it, plus the dimension's "don't care" conjunctions, which do
not constrain it. An event's candidates are the AND of one such integer per dimension its
trigger's rules use (tags and keywords: the OR over the event's tags or words first), so the
cost follows the values the event has and the rules that can match it, not the number of
rules. Keywords are looked up by their first token, a phrase then checked against the tokens
that follow it. Business hours are asked for, and the text searched, only when a conjunction
still standing needs them; the search is one RE2 set holding every pattern of the trigger. The
enum dimensions (channel, status, priority, previous status, assigned) are looked up together,
one memo per combination of their values. What the index leaves open - snooze, schedule,
rollout, the `any_of` sets themselves, cooldown - is checked on the candidates only, in
priority order, until a stop. The code of each trigger's match is generated for the
dimensions its rules use (`_TriggerIndex.source` shows it).

Cooldown needs state the worker keeps (the last run per rule and conversation). `match` takes
it in `MatchContext.last_runs`; to fetch only what is needed, call `candidates()` first: its
`cooldown_rule_ids` are the candidates that have a cooldown, and `resolve(last_runs)` finishes.
`needs_contact_tags` and `needs_business_hours` say whether an evaluation may need the
contact's tags (fetch them into the Event) or business hours (pass `in_business_hours`).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from omnistream.automation.predicates import (
    AUTOMATION_SOURCE,
    BusinessHours,
    Event,
    Match,
    MatchContext,
    compiles,
    contact_tags_of,
    contains_phrase,
    in_cooldown,
    in_rollout,
    is_snoozed,
    keyword_phrase,
    next_schedule_start,
    normalize_tag,
    pattern_search,
    pattern_set,
    pause_in_force,
    priority_key,
    schedule_active,
    tokens,
)
from omnistream.automation.schemas import (
    AutomationControl,
    AutomationRule,
    ConditionSet,
    EffectiveState,
    RuleConditions,
    StopReason,
)

__all__ = [
    "Candidates",
    "CompiledRules",
    "Event",
    "Match",
    "MatchContext",
    "compile_rules",
    "effective_state",
    "rule_effective_state",
]


# ------------------------------------------------------------------ per-event state


class _State:
    """What one evaluation computes at most once: the text's tokens, the business-hours answer,
    the conversation id as text (for rollout buckets). The index passes what it computed."""

    __slots__ = ("_conversation", "_hours", "_tokens", "context", "event", "now")

    def __init__(
        self, event: Event, context: MatchContext, words: list[str] | None = None, hours: bool | None = None
    ) -> None:
        self.event = event
        self.context = context
        self.now = context.now
        self._tokens = words
        self._hours = hours
        self._conversation: str | None = None

    def tokens(self) -> list[str]:
        if self._tokens is None:
            text = self.event.message_text
            self._tokens = tokens(text) if text else []
        return self._tokens

    def bh(self) -> bool:
        if self._hours is None:
            self._hours = BusinessHours(self.context.in_business_hours, self.event.division_id)()
        return self._hours

    def conversation(self) -> str:
        if self._conversation is None:
            self._conversation = str(self.event.conversation_id)
        return self._conversation


Check = Callable[[_State], bool]


# ------------------------------------------------------------------ residual checks


def _set_checks(conditions: ConditionSet) -> list[Check]:
    """Every condition of a set as a check: how an `any_of` set is decided."""
    checks: list[Check] = []

    def member(attribute: str, values: Iterable[Any]) -> None:
        allowed = frozenset(values)
        get = operator.attrgetter(attribute)
        checks.append(lambda st: get(st.event) in allowed)

    if conditions.channel_in:
        member("channel", conditions.channel_in)
    if conditions.status_in:
        member("status", conditions.status_in)
    if conditions.division_id_in:
        member("division_id", conditions.division_id_in)
    if conditions.priority_in:
        member("priority", conditions.priority_in)
    if conditions.previous_status_in:
        member("previous_status", conditions.previous_status_in)
    if conditions.assigned_is_null is not None:
        want_unassigned = conditions.assigned_is_null
        checks.append(lambda st: (st.event.assigned_agent_id is None) == want_unassigned)
    if conditions.has_any_tags:
        tags = frozenset(map(normalize_tag, conditions.has_any_tags))
        checks.append(lambda st: not tags.isdisjoint(st.event.tags))
    if conditions.contact_has_any_tags:
        contact_tags = frozenset(map(normalize_tag, conditions.contact_has_any_tags))
        checks.append(lambda st: not contact_tags.isdisjoint(contact_tags_of(st.event)))
    if conditions.message_contains_any:
        phrases = tuple(keyword_phrase(k) for k in conditions.message_contains_any)
        checks.append(lambda st: any(contains_phrase(st.tokens(), p) for p in phrases))
    if conditions.business_hours_only:
        checks.append(lambda st: st.bh())
    if conditions.outside_business_hours_only:
        checks.append(lambda st: not st.bh())
    checks.extend(_pattern_check(conditions))
    return checks


def _pattern_check(conditions: ConditionSet) -> list[Check]:
    if conditions.message_matches is None:
        return []
    search = pattern_search(conditions.message_matches)

    def check(st: _State) -> bool:
        text = st.event.message_text
        return text is not None and search(text)

    return [check]


def _all(checks: Sequence[Check]) -> Check:
    if not checks:
        return lambda st: True
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks
        return lambda st: first(st) and second(st)
    return lambda st: all(check(st) for check in checks)


def _residual_check(rule: AutomationRule) -> Check | None:
    """What a candidate must still pass once the index admits it, cheapest first."""
    checks: list[Check] = []
    if rule.snoozed_until is not None:
        checks.append(lambda st: not is_snoozed(rule, st.now))
    if rule.schedule_settings.enabled:
        schedule = rule.schedule_settings
        checks.append(lambda st: schedule_active(schedule, st.now))
    if rule.rollout_percentage < 100:
        percentage, rule_id = rule.rollout_percentage, str(rule.id)
        checks.append(lambda st: in_rollout(percentage, rule_id, st.conversation()))
    if rule.conditions.any_of:
        sets = tuple(_all(_set_checks(s)) for s in rule.conditions.any_of)
        checks.append(lambda st: any(holds(st) for holds in sets))
    return _all(checks) if checks else None


# ------------------------------------------------------------------ dimensions


def _values(conditions: ConditionSet, name: str) -> set[Any] | None:
    """The values a set of conditions admits on one dimension; None: it does not constrain it."""
    if name == "assigned":
        return None if conditions.assigned_is_null is None else {conditions.assigned_is_null}
    if name == "business_hours":  # the answers to "inside business hours?" the set accepts
        answers = {True, False}
        if conditions.business_hours_only:
            answers.discard(False)
        if conditions.outside_business_hours_only:
            answers.discard(True)
        return None if len(answers) == 2 else answers
    listed = getattr(conditions, name)
    if not listed:
        return None
    if name in ("has_any_tags", "contact_has_any_tags"):
        return set(map(normalize_tag, listed))
    if name == "message_contains_any":
        return {p for p in map(keyword_phrase, listed) if p}
    if name == "message_matches":
        return {listed}
    if name == "division_id_in":
        return {division.int for division in listed}
    return set(listed)


def _admitted(top: RuleConditions, one_of: ConditionSet | None, name: str, scalar: bool) -> set[Any] | None:
    """What a conjunction (the rule's conditions and one of its any_of sets) admits on a
    dimension; None: anything. On a scalar dimension both constraints hold, so the admitted
    values are their intersection; tags and keywords are "any of" lists, which cannot be
    intersected, and the rule's own list is kept (the set's is checked on the candidates)."""
    own = _values(top, name)
    if one_of is None:
        return own
    other = _values(one_of, name)
    if own is None:
        return other
    if other is None or not scalar:
        return own
    return own & other


def _bits(ranks: Iterable[int], size: int) -> int:
    """The integer with the bits of these ranks set (rank 0 is the top bit)."""
    buffer = bytearray((size + 7) // 8)
    top = size - 1
    for rank in ranks:
        bit = top - rank
        buffer[bit >> 3] |= 1 << (bit & 7)
    return int.from_bytes(buffer, "little")


_SCALAR_DIMENSIONS: tuple[tuple[str, str, bool], ...] = (
    # (the condition, the event's value as an expression over `event`, whether its values are
    # a handful of enum members)
    # Division ids as integers: a UUID's hash and equality are Python code, an int's are not.
    ("division_id_in", "(None if event.division_id is None else event.division_id.int)", False),
    ("channel_in", "event.channel", True),
    ("status_in", "event.status", True),
    ("priority_in", "event.priority", True),
    ("previous_status_in", "event.previous_status", True),
    ("assigned", "(event.assigned_agent_id is None)", True),
)


class _Combined:
    """Several dimensions whose values are a handful of enum members, looked up at once: the
    AND of their masks for each combination of values an event has had, computed the first
    time that combination comes (there are at most a few hundred), then one lookup."""

    LIMIT = 4096
    """Combinations kept; past that (values outside the enums) each is computed anew."""

    def __init__(self, dimensions: list[tuple[dict[Any, int], int]]) -> None:
        self.dimensions = dimensions
        self.known: dict[tuple[Any, ...], int] = {}

    def __call__(self, values: tuple[Any, ...]) -> int:
        mask = -1
        for value, (admit, dc) in zip(values, self.dimensions, strict=True):
            mask &= admit.get(value, dc)
        if len(self.known) < self.LIMIT:
            self.known[values] = mask
        return mask


class _Patterns:
    """The `message_matches` dimension: each pattern's conjunctions, and one RE2 set of all the
    patterns, which finds in one pass over the text every pattern that matches it (a set of a
    hundred patterns costs about what one search does). A pattern RE2 refuses matches nothing;
    if the set as a whole cannot be built, each pattern still standing is searched alone."""

    def __init__(self, masks: dict[str, int], dont_care: int, full: int) -> None:
        self.dont_care = dont_care
        self.constrained = full ^ dont_care
        usable = [(pattern, mask) for pattern, mask in masks.items() if compiles(pattern)]
        self.masks = [mask for _, mask in usable]
        self.searches = [(pattern_search(pattern), mask) for pattern, mask in usable]
        self.set = pattern_set([pattern for pattern, _ in usable]) if usable else None

    def admitted(self, text: str | None, mask: int) -> int:
        admitted = self.dont_care
        if text is None:
            return admitted
        if self.set is not None:
            for i in self.set.Match(text) or ():
                admitted |= self.masks[i]
        else:
            for search, found in self.searches:
                if mask & found and search(text):
                    admitted |= found
        return admitted


class _Entry:
    """A rule as the candidate loop sees it."""

    __slots__ = ("check", "cooldown", "match", "rule", "stop")

    def __init__(self, rule: AutomationRule) -> None:
        self.rule = rule
        self.match = Match(rule)
        self.stop = rule.stop_on_match
        self.cooldown = rule.cooldown_secs
        self.check = _residual_check(rule)


class _TriggerIndex:
    """The rules of one trigger type, as conjunctions, and their dimensions.

    A rule without `any_of` is one conjunction (its conditions); a rule with k sets is k
    conjunctions (its conditions and one set each), next to each other in priority order. A
    conjunction has one bit; the rule is a candidate when any of its conjunctions is.
    """

    def __init__(self, rules: list[AutomationRule]) -> None:
        self.rules = len(rules)
        entries: list[_Entry] = []
        conjunctions: list[tuple[RuleConditions, ConditionSet | None]] = []
        for rule in rules:
            entry = _Entry(rule)
            for one_of in rule.conditions.any_of or (None,):
                entries.append(entry)
                conjunctions.append((rule.conditions, one_of))
        size = len(conjunctions)
        self.size = size
        self.entries = entries
        self.full = (1 << size) - 1

        scalar = []
        enumerated: list[tuple[str, dict[Any, int], int]] = []
        for name, expression, is_enum in _SCALAR_DIMENSIONS:
            postings, dont_care = self._postings(conjunctions, name, scalar=True)
            if len(dont_care) == size:
                continue
            dc = _bits(dont_care, size)
            admit = {value: _bits(ranks, size) | dc for value, ranks in postings.items()}
            if is_enum:
                enumerated.append((expression, admit, dc))
                continue
            # Most selective first: the fewer conjunctions an event value admits on average.
            admitted = (len(dont_care) * (len(postings) + 1) + sum(map(len, postings.values()))) / (len(postings) + 1)
            scalar.append((admitted, expression, admit, dc))
        if len(enumerated) == 1:
            scalar.append((size, *enumerated[0]))
            enumerated = []
        self.scalar = [(expression, admit, dc) for _, expression, admit, dc in sorted(scalar, key=lambda d: d[0])]
        self.enumerated = enumerated

        postings, dont_care = self._postings(conjunctions, "business_hours", scalar=True)
        self.business_hours: tuple[int, int, int] | None = None
        if len(dont_care) < size:
            dc = _bits(dont_care, size)
            self.business_hours = (
                _bits(postings.get(True, ()), size) | dc,
                _bits(postings.get(False, ()), size) | dc,
                self.full ^ dc,
            )

        self.tags = self._set_dimension(conjunctions, "has_any_tags")
        self.contact_tags = self._set_dimension(conjunctions, "contact_has_any_tags")

        postings, dont_care = self._postings(conjunctions, "message_contains_any", scalar=False)
        # By first token: the conjunctions with that one-word keyword (an int), or those and the
        # longer phrases that start with it (a pair of the int and a list of (phrase, mask)).
        self.keywords: tuple[dict[str, Any], frozenset[str], int] | None = None
        if len(dont_care) < size:
            singles: dict[str, int] = {}
            phrases: dict[str, list[tuple[tuple[str, ...], int]]] = {}
            for phrase, ranks in postings.items():
                if len(phrase) == 1:
                    singles[phrase[0]] = _bits(ranks, size)
                else:
                    phrases.setdefault(phrase[0], []).append((phrase, _bits(ranks, size)))
            by_first: dict[str, Any] = dict(singles)
            for first, longer in phrases.items():
                by_first[first] = (singles.get(first, 0), longer)
            self.keywords = (by_first, frozenset(by_first), _bits(dont_care, size))

        postings, dont_care = self._postings(conjunctions, "message_matches", scalar=False)
        self.patterns: _Patterns | None = None
        if len(dont_care) < size:
            self.patterns = _Patterns(
                {pattern: _bits(ranks, size) for pattern, ranks in postings.items()}, _bits(dont_care, size), self.full
            )

        self._generate()

        every_set = [s for top, one_of in conjunctions for s in (top, one_of) if s is not None]
        self.needs_contact_tags = any(s.contact_has_any_tags for s in every_set)
        self.needs_business_hours = any(s.business_hours_only or s.outside_business_hours_only for s in every_set)

    @staticmethod
    def _postings(
        conjunctions: list[tuple[RuleConditions, ConditionSet | None]], name: str, *, scalar: bool
    ) -> tuple[dict[Any, list[int]], list[int]]:
        postings: dict[Any, list[int]] = {}
        dont_care: list[int] = []
        for rank, (top, one_of) in enumerate(conjunctions):
            admitted = _admitted(top, one_of, name, scalar)
            if admitted is None:
                dont_care.append(rank)
                continue
            for value in admitted:
                postings.setdefault(value, []).append(rank)
        return postings, dont_care

    def _set_dimension(
        self, conjunctions: list[tuple[RuleConditions, ConditionSet | None]], name: str
    ) -> tuple[dict[str, int], frozenset[str], int] | None:
        postings, dont_care = self._postings(conjunctions, name, scalar=False)
        if len(dont_care) == self.size:
            return None
        masks = {value: _bits(ranks, self.size) for value, ranks in postings.items()}
        return masks, frozenset(masks), _bits(dont_care, self.size)

    def _dimension_lines(self, env: dict[str, Any], nothing: str) -> list[str]:
        """Source lines narrowing `mask` to the conjunctions that admit `event`, one AND per
        dimension these rules use (written out for those alone: a loop over dimensions costs
        a fifth more per event); `return <nothing>` as soon as none is left. They leave the
        text's tokens in `words` and the business-hours answer in `hours` if they needed them."""
        lines = ["    words = hours = None"]
        if not self.scalar and not self.enumerated:
            env["FULL"] = self.full
            lines.append("    mask = FULL")
        for k, (expression, admit, dc) in enumerate(self.scalar):
            env[f"admit{k}"], env[f"dc{k}"] = admit.get, dc
            lines += [f"    mask {'&=' if k else '='} admit{k}({expression}, dc{k})", "    if not mask:"]
            lines.append(f"        return {nothing}")
        if self.enumerated:
            combined = _Combined([(admit, dc) for _, admit, dc in self.enumerated])
            env["combined"], env["combined_known"] = combined, combined.known.get
            values = ", ".join(expression for expression, _, _ in self.enumerated)
            lines += [
                f"    values = ({values})",
                "    found = combined_known(values)",
                f"    mask {'&=' if self.scalar else '='} combined(values) if found is None else found",
                "    if not mask:",
                f"        return {nothing}",
            ]
        for name, values, dimension in (
            ("tags", "event.tags", self.tags),
            ("contact_tags", "contact_tags_of(event)", self.contact_tags),
        ):
            if dimension is not None:
                # An event has a tag or two: a lookup each beats intersecting sets.
                masks, _, dc = dimension
                env[f"{name}_mask"], env[f"{name}_dc"] = masks.get, dc
                lines += [
                    f"    admitted = {name}_dc",
                    f"    for value in {values}:",
                    f"        admitted |= {name}_mask(value, 0)",
                    "    mask &= admitted",
                    "    if not mask:",
                    f"        return {nothing}",
                ]
        if self.keywords is not None:
            env["by_first"], env["keyword_keys"], env["keyword_dc"] = self.keywords
            lines += [
                "    text = event.message_text",
                "    words = tokens(text) if text else []",
                "    admitted = keyword_dc",
                "    for word in keyword_keys.intersection(words):",
                "        found = by_first[word]",
                "        if found.__class__ is int:",
                "            admitted |= found",
                "        else:",
                "            single, phrases = found",
                "            admitted |= single",
                "            for phrase, found in phrases:",
                "                if contains_phrase(words, phrase):",
                "                    admitted |= found",
                "    mask &= admitted",
                "    if not mask:",
                f"        return {nothing}",
            ]
        if self.business_hours is not None:
            # Asked last, and only when a conjunction still standing depends on the answer.
            env["if_open"], env["if_closed"], env["hours_constrained"] = self.business_hours
            lines += [
                "    if mask & hours_constrained:",
                "        hours = context.in_business_hours",
                "        if hours is not True and hours is not False:",
                "            hours = BusinessHours(hours, event.division_id)()",
                "        mask &= if_open if hours else if_closed",
            ]
        if self.patterns is not None:
            # Last, being the dearest: one RE2 pass over the text for all the patterns still standing.
            env["patterns"], env["patterns_constrained"] = self.patterns, self.patterns.constrained
            lines += [
                "    if mask & patterns_constrained:",
                "        mask &= patterns.admitted(event.message_text, mask)",
            ]
        return lines

    def _generate(self) -> None:
        """`match(event, context)` and `candidates(event, context)` for these rules."""
        env: dict[str, Any] = {
            "BusinessHours": BusinessHours,
            "State": _State,
            "contact_tags_of": contact_tags_of,
            "contains_phrase": contains_phrase,
            "in_cooldown": in_cooldown,
            "tokens": tokens,
        }
        # The loop over the candidates, top bit first, with only the steps these rules need.
        has_any_of = any(entry is other for entry, other in zip(self.entries, self.entries[1:], strict=False))
        has_checks = any(entry.check is not None for entry in self.entries)
        has_cooldowns = any(entry.cooldown for entry in self.entries)
        env["by_bit"] = self.entries[::-1]
        loop = [
            "    out = []",
            *(["    last = None"] if has_any_of else []),
            *(["    st = None"] if has_checks else []),
            *(["    last_runs = context.last_runs"] if has_cooldowns else []),
            "    while mask:",
            "        bit = mask.bit_length() - 1",
            "        mask ^= 1 << bit",
            "        entry = by_bit[bit]",
        ]
        if has_any_of:
            loop += [
                "        if entry is last:  # another conjunction of a rule already decided",
                "            continue",
                "        last = entry",
            ]
        if has_checks:
            loop += [
                "        check = entry.check",
                "        if check is not None:",
                "            if st is None:",
                "                st = State(event, context, words, hours)",
                "            if not check(st):",
                "                continue",
            ]
        if has_cooldowns:
            loop += [
                "        if entry.cooldown and last_runs and in_cooldown(",
                "            entry.cooldown, last_runs.get(entry.rule.id), context.now",
                "        ):",
                "            continue",
            ]
        loop += ["        out.append(entry.match)", "        if entry.stop:", "            break", "    return out"]
        match = ["def match(event, context):", *self._dimension_lines(env, "[]"), *loop]
        candidates = [
            "def candidates(event, context):",
            *self._dimension_lines(env, "0, None"),
            "    return mask, State(event, context, words, hours)",
        ]
        self.source = "\n".join([*match, "", "", *candidates])
        exec(compile(self.source, f"<rules of one trigger, {self.size} conjunctions>", "exec"), env)  # noqa: S102
        self.match: Callable[[Event, MatchContext], list[Match]] = env["match"]
        self.candidates: Callable[[Event, MatchContext], tuple[int, _State | None]] = env["candidates"]

    def passing(self, event: Event, context: MatchContext) -> list[_Entry]:
        """The candidates that pass everything but cooldown, in order, up to the first stop
        that no cooldown can hold back (one in cooldown does not stop the evaluation)."""
        mask, st = self.candidates(event, context)
        top = self.size - 1
        out: list[_Entry] = []
        last = None
        while mask:
            bit = mask.bit_length() - 1
            mask ^= 1 << bit
            entry = self.entries[top - bit]
            if entry is last:
                continue
            last = entry
            if entry.check is not None and not entry.check(st):
                continue
            out.append(entry)
            if entry.stop and not entry.cooldown:
                break
        return out


def _resolve(passed: list[_Entry], last_runs: Mapping[UUID, datetime] | None, now: datetime) -> list[Match]:
    out: list[Match] = []
    for entry in passed:
        if entry.cooldown and last_runs and in_cooldown(entry.cooldown, last_runs.get(entry.rule.id), now):
            continue
        out.append(entry.match)
        if entry.stop:
            break
    return out


@dataclass(frozen=True, slots=True)
class Candidates:
    """An evaluation waiting for cooldown state: the rules that would run, in order, unless in
    cooldown; `resolve` with the last runs of `cooldown_rule_ids` gives the matches."""

    entries: tuple[_Entry, ...]
    now: datetime

    @property
    def rules(self) -> list[AutomationRule]:
        return [entry.rule for entry in self.entries]

    @property
    def cooldown_rule_ids(self) -> list[UUID]:
        return [entry.rule.id for entry in self.entries if entry.cooldown]

    def resolve(self, last_runs: Mapping[UUID, datetime] | None = None) -> list[Match]:
        return _resolve(list(self.entries), last_runs, self.now)


class CompiledRules:
    """A tenant's rules and control state, indexed for matching. Immutable: compile anew on change."""

    match: Callable[[Event, MatchContext], list[Match]]
    """`match(event, context)`: the rules that run for the event, in execution order (none for
    an event automation caused, or while the tenant is paused). Cooldowns come from
    `context.last_runs`: all of the conversation's last runs, or at least those of the rules
    that have a cooldown; a rule not in it never ran. (A closure over the indexes, made by the
    constructor: per event an attribute lookup and a method call fewer than a method.)"""

    def __init__(self, rules: Iterable[AutomationRule], control: AutomationControl | None = None, version: Any = None):
        self.control = control
        self.version = version
        self._paused = control if control is not None and control.is_paused else None
        by_trigger: dict[str, list[AutomationRule]] = {}
        for rule in sorted((r for r in rules if r.is_active), key=priority_key):
            by_trigger.setdefault(rule.trigger_type, []).append(rule)
        self._indexes = {trigger: _TriggerIndex(rules) for trigger, rules in by_trigger.items()}
        self.match = self._matcher()
        self.needs_contact_tags = any(i.needs_contact_tags for i in self._indexes.values())
        self.needs_business_hours = any(i.needs_business_hours for i in self._indexes.values())

    def __len__(self) -> int:
        """How many rules it holds (the active ones)."""
        return sum(index.rules for index in self._indexes.values())

    def needs_contact_tags_for(self, event_type: str) -> bool:
        index = self._indexes.get(event_type)
        return index is not None and index.needs_contact_tags

    def needs_business_hours_for(self, event_type: str) -> bool:
        index = self._indexes.get(event_type)
        return index is not None and index.needs_business_hours

    def _index(self, event: Event, now: datetime) -> _TriggerIndex | None:
        """The index of the event's trigger type, unless nothing can match the event now."""
        index = self._indexes.get(event.event_type)
        if index is None or event.source == AUTOMATION_SOURCE:
            return None
        if self._paused is not None and pause_in_force(self._paused, now):
            return None
        return index

    def _matcher(self) -> Callable[[Event, MatchContext], list[Match]]:
        by_type = {trigger: index.match for trigger, index in self._indexes.items()}.get
        paused = self._paused

        def match(event: Event, context: MatchContext) -> list[Match]:
            run = by_type(event.event_type)
            if run is None or event.source == AUTOMATION_SOURCE:
                return []
            if paused is not None and pause_in_force(paused, context.now):
                return []
            return run(event, context)

        return match

    def candidates(self, event: Event, context: MatchContext) -> Candidates:
        """Phase one of `match`, for a caller that fetches the cooldown state of the candidates
        only: `Candidates.cooldown_rule_ids`, then `Candidates.resolve(last_runs)`."""
        index = self._index(event, context.now)
        return Candidates(() if index is None else tuple(index.passing(event, context)), context.now)


def compile_rules(
    rules: Iterable[AutomationRule], control: AutomationControl | None = None, *, version: Any = None
) -> CompiledRules:
    """Index a tenant's rules, all of them: inactive ones are left out here, and snooze, pause,
    schedule and rollout are decided per event, so the same code decides the effective state."""
    return CompiledRules(rules, control, version)


# ------------------------------------------------------------------ effective state


def effective_state(rule: AutomationRule, now: datetime, control: AutomationControl | None = None) -> list[StopReason]:
    """Everything that stops the rule from running now (empty: it runs when its conditions
    hold), decided by the predicates the matcher uses."""
    reasons: list[StopReason] = []
    if not rule.is_active:
        reasons.append(StopReason(code="inactive", message="the rule is switched off"))
    if is_snoozed(rule, now):
        assert rule.snoozed_until is not None
        reasons.append(
            StopReason(
                code="snoozed", message=f"snoozed until {rule.snoozed_until.isoformat()}", until=rule.snoozed_until
            )
        )
    if pause_in_force(control, now):
        assert control is not None
        until = control.paused_until
        message = "automation is paused for the organisation" + (f" until {until.isoformat()}" if until else "")
        if control.pause_reason:
            message += f": {control.pause_reason}"
        reasons.append(StopReason(code="paused", message=message, until=until))
    if not schedule_active(rule.schedule_settings, now):
        opens = next_schedule_start(rule.schedule_settings, now)
        message = "outside its schedule" + (f" until {opens.isoformat()}" if opens else "; its schedule never opens")
        reasons.append(StopReason(code="outside_schedule", message=message, until=opens))
    if rule.rollout_percentage <= 0:
        reasons.append(StopReason(code="rollout_zero", message="its rollout percentage is 0"))
    return reasons


def rule_effective_state(
    rule: AutomationRule, now: datetime, control: AutomationControl | None = None
) -> EffectiveState:
    """The effective-state endpoint's answer."""
    reasons = effective_state(rule, now, control)
    codes = {reason.code for reason in reasons}
    return EffectiveState(
        rule_id=rule.id,
        is_active=rule.is_active,
        is_snoozed="snoozed" in codes,
        snoozed_until=rule.snoozed_until,
        global_paused="paused" in codes,
        schedule_active="outside_schedule" not in codes,
        effective_active=not reasons,
        reasons=reasons,
    )
