"""Events matched per second: the compiled rule matcher against the reference interpreter.

    python -m benchmarks.rule_matching [--sizes 10,100,1000,10000] [--seconds 3] [--rounds 3] [--events 4000]
                                       [--seed 7]

For each rule-set size, in one run: (a) the compiled matcher (`engine.compile_rules`, then
`match` per event), (b) the reference interpreter (`interpreter.ReferenceInterpreter`: the same
semantics, one rule at a time), their ratio, and the time to compile the rules. Then the
matcher's throughput at the largest size against 100 rules. And (c), what a worker without a
compiled matcher does: every rule of the tenant read from PostgreSQL for each event (the app's
own query, on the embedded server or BENCH_DATABASE_URL), then interpreted; its rate is events per
second of wall time, since the database's share is the point. --no-postgres leaves (c) out.

The rule sets are what tenants write, scaled the way big tenants grow: by brands or teams
(divisions) with their own rules, plus tenant-wide ones. Mostly keyword rules (FAQ topics and
product names, English, Indonesian, Spanish, Portuguese; some multi-word phrases), channel and
status routing, tag rules, out-of-hours replies with a cooldown, some regular expressions
(order numbers, emails), some any_of, some status-change and new-conversation rules; a few
rules inactive, snoozed, scheduled or rolled out to part of the conversations; priorities with
ties, some stop_on_match. The events: mostly inbound messages with short texts in those
languages, some new conversations and status changes, across channels and divisions. Both
sides get the same events, each event a fresh object, with the business-hours answer and no
cooldown state; each side's result is checked against the other's before timing. Times are
CPU time of the benchmark process (one core), so other work on the machine does not count.
"""

from __future__ import annotations

import argparse
import gc
import random
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from uuid import UUID

import msgspec
import uvloop

from benchmarks._servers import new_tenant, servers
from omnistream.automation.engine import compile_rules
from omnistream.automation.interpreter import ReferenceInterpreter
from omnistream.automation.predicates import Event, MatchContext
from omnistream.automation.repository import rules_for_matching
from omnistream.automation.schemas import (
    AddTagsAction,
    AlertSettings,
    AssignAgentAction,
    AssignDivisionAction,
    AutomationControl,
    AutomationRule,
    ConditionSet,
    RuleConditions,
    ScheduleSettings,
    SendMessageAction,
    SendTemplateAction,
    SetPriorityAction,
    no_schedule,
)
from omnistream.db import Database

NOW = datetime(2024, 8, 26, 9, 30, tzinfo=UTC)  # a Monday morning
CHANNELS = ["whatsapp"] * 6 + ["instagram"] * 2 + ["messenger", "email"]
STATUSES = ["open"] * 6 + ["pending"] * 3 + ["resolved"]
PRIORITIES = ["normal"] * 7 + ["low", "high", "urgent"]
TAGS = ["vip", "new", "complaint", "b2b", "returning", "spam", "lead", "partner"]

TOPICS: dict[str, list[str]] = {
    "en": ["refund", "cancel", "invoice", "delivery", "password", "discount", "warranty", "broken", "complaint",
           "shipping", "track my order", "credit card", "opening hours", "speak to a human", "price", "return"],
    "id": ["refund", "batal", "tagihan", "pengiriman", "kata sandi", "diskon", "garansi", "rusak", "komplain",
           "ongkir", "lacak pesanan", "kartu kredit", "jam buka", "bicara dengan admin", "harga", "retur"],
    "es": ["reembolso", "cancelar", "factura", "envío", "contraseña", "descuento", "garantía", "roto", "queja",
           "seguimiento", "tarjeta de crédito", "horario", "hablar con un agente", "precio", "devolución"],
    "pt": ["reembolso", "cancelar", "fatura", "entrega", "senha", "desconto", "garantia", "quebrado", "reclamação",
           "rastrear pedido", "cartão de crédito", "horário", "falar com atendente", "preço", "devolução"],
}  # fmt: skip
OPENERS = {
    "en": ["hi", "hello", "good morning", "hey there", "excuse me"],
    "id": ["halo kak", "permisi", "selamat pagi", "min", "kak"],
    "es": ["hola", "buenos días", "buenas", "disculpe"],
    "pt": ["olá", "oi", "bom dia", "boa tarde"],
}
FILLERS = {
    "en": ["I need help with my {x}", "where is my {x}?", "can you check the {x} please", "my {x} is not working",
           "question about {x}", "I want to know about {x}", "thanks!", "is anyone there?", "ok thank you"],
    "id": ["saya mau tanya soal {x}", "{x} saya belum sampai", "tolong cek {x} ya", "{x} saya bermasalah",
           "bisa bantu {x}?", "terima kasih kak", "masih ada stok?", "ok makasih"],
    "es": ["necesito ayuda con mi {x}", "¿dónde está mi {x}?", "mi {x} no funciona", "pregunta sobre {x}",
           "¡gracias!", "¿hay alguien?", "¿cuánto cuesta el {x}?"],
    "pt": ["preciso de ajuda com meu {x}", "onde está meu {x}?", "meu {x} não funciona", "dúvida sobre {x}",
           "obrigado!", "tem alguém aí?", "quanto custa o {x}?"],
}  # fmt: skip
LANGUAGES = ["en"] * 3 + ["id"] * 4 + ["es"] * 2 + ["pt"] * 2
SYLLABLES = ["ka", "zen", "tri", "lo", "mo", "vex", "ra", "pi", "nu", "sol", "dar", "qu", "fen", "ix", "bo", "ta"]
REGEXES = [r"#\d{5,}", r"(?i)\border\s*(?:no|number|#)?\s*\d{4,}", r"[\w.+-]+@[\w-]+\.[\w.]+", r"\+?\d[\d\s-]{8,}\d",
           r"(?i)\b(?:inv|invoice)-\d{4}-\d+", r"(?i)resi\s*:?\s*[a-z0-9]{8,}"]  # fmt: skip


def _uuid(rng: random.Random) -> UUID:
    return UUID(int=rng.getrandbits(128), version=4)


class World:
    """The tenant: its divisions and product names, scaled with the number of rules."""

    def __init__(self, rng: random.Random, size: int) -> None:
        self.rng = rng
        self.divisions = [_uuid(rng) for _ in range(max(3, size // 25))]
        count = max(20, size // 3)
        names: set[str] = set()
        while len(names) < count:
            names.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))))
        self.products = sorted(names)

    def division(self) -> UUID:
        return self.rng.choice(self.divisions)

    def keywords(self) -> list[str]:
        rng = self.rng
        if rng.random() < 0.5:
            language = rng.choice(LANGUAGES)
            return rng.sample(TOPICS[language], rng.randint(1, 3))
        words = rng.sample(self.products, rng.randint(1, 3))
        return words + ([f"{words[0]} {rng.choice(['pro', 'max', 'mini', 'plus'])}"] if rng.random() < 0.3 else [])


def _rule(rng: random.Random, world: World, created: datetime, tenant_wide: float) -> AutomationRule:
    kind = rng.random()
    trigger = "message_received_inbound"
    cooldown = 0
    stop = rng.random() < 0.1
    actions: list = [AddTagsAction(tags=[rng.choice(TAGS)])]
    scoped = rng.random() >= tenant_wide
    division = [world.division()] if scoped else None
    if kind < 0.45:
        conditions = RuleConditions(
            message_contains_any=world.keywords(),
            division_id_in=division,
            channel_in=rng.sample(["whatsapp", "instagram", "messenger", "email"], 2) if rng.random() < 0.3 else None,
        )
        actions = [AddTagsAction(tags=[rng.choice(TAGS)]), AssignDivisionAction(division_id=world.division())]
    elif kind < 0.60:
        trigger = rng.choice(["message_received_inbound", "conversation_created"])
        conditions = RuleConditions(
            channel_in=[rng.choice(CHANNELS)],
            status_in=["open"] if rng.random() < 0.5 else None,
            assigned_is_null=True if rng.random() < 0.6 else None,
            division_id_in=division or [world.division()],
        )
        actions = [AssignAgentAction(strategy="round_robin")]
    elif kind < 0.70:
        conditions = RuleConditions(
            has_any_tags=rng.sample(TAGS, rng.randint(1, 2)),
            priority_in=["high", "urgent"] if rng.random() < 0.5 else None,
            division_id_in=division or [world.division()],
        )
        actions = [SetPriorityAction(priority="high")]
    elif kind < 0.78:
        conditions = RuleConditions(
            outside_business_hours_only=True, channel_in=[rng.choice(CHANNELS)], division_id_in=division
        )
        actions = [SendMessageAction(text="Hi {{contact.name}}, we are closed now and reply tomorrow.")]
        cooldown, stop = 3600, rng.random() < 0.5
    elif kind < 0.83:
        conditions = RuleConditions(
            message_matches=rng.choice(REGEXES),
            division_id_in=division or [world.division()],
            message_contains_any=["order", "pesanan", "pedido"] if rng.random() < 0.3 else None,
        )
    elif kind < 0.90:
        conditions = RuleConditions(
            division_id_in=division or [world.division()],
            any_of=[
                ConditionSet(message_contains_any=world.keywords()),
                ConditionSet(priority_in=["urgent"], channel_in=["whatsapp"]),
            ],
        )
    elif kind < 0.95:
        trigger = "status_changed"
        conditions = RuleConditions(
            status_in=["resolved"], previous_status_in=["open", "pending"], division_id_in=division
        )
        actions = [SendTemplateAction(name="csat_survey", language="en")]
    else:
        trigger = "conversation_created"
        conditions = RuleConditions(
            channel_in=[rng.choice(CHANNELS)], division_id_in=division, business_hours_only=True
        )
        actions = [SendMessageAction(text="Welcome {{contact.name}}!")]
    schedule = no_schedule()
    if rng.random() < 0.05:
        start = rng.randint(0, 23)
        schedule = ScheduleSettings(
            active_weekdays=sorted(rng.sample(range(7), rng.randint(1, 7))),
            start_hour_utc=start,
            end_hour_utc=(start + rng.randint(1, 23)) % 24,
            timezone_offset_minutes=rng.choice([0, 420, 480, -300, 60]),
        )
    return AutomationRule(
        id=_uuid(rng),
        name=f"rule {kind:.3f}",
        description="",
        is_active=rng.random() > 0.05,
        trigger_type=trigger,  # type: ignore[arg-type]
        conditions=conditions,
        actions=actions,
        alert_settings=AlertSettings(),
        schedule_settings=schedule,
        priority=rng.choice([0, 0, 0, 0, 10, 20, 50, 100]),
        rollout_percentage=100 if rng.random() > 0.05 else 50,
        stop_on_match=stop,
        cooldown_secs=cooldown,
        created_at=created,
        updated_at=created,
        snoozed_until=NOW + timedelta(hours=2) if rng.random() < 0.02 else None,
    )


def make_rules(rng: random.Random, world: World, size: int) -> list[AutomationRule]:
    start = NOW - timedelta(days=365)
    # Tenant-wide rules are a few dozen, whatever the size: 15% of the first 200 rules, then 1%;
    # the others belong to one brand or team. Created in bursts: some share a creation time
    # (imports), so order ties reach the id.
    return [
        _rule(rng, world, start + timedelta(minutes=rng.randint(0, size)), 0.15 if i < 200 else 0.01)
        for i in range(size)
    ]


def _text(rng: random.Random, world: World) -> str:
    language = rng.choice(LANGUAGES)
    subject = rng.choice(TOPICS[language]) if rng.random() < 0.6 else rng.choice(world.products)
    text = rng.choice(FILLERS[language]).format(x=subject)
    if rng.random() < 0.7:
        text = f"{rng.choice(OPENERS[language])}, {text}"
    if rng.random() < 0.15:
        text += f" order #{rng.randint(10_000, 9_999_999)}"
    return text if rng.random() > 0.2 else text.capitalize()


def make_events(rng: random.Random, world: World, count: int) -> list[tuple[Event, MatchContext]]:
    events = []
    for _ in range(count):
        kind = rng.random()
        event_type = (
            "message_received_inbound"
            if kind < 0.85
            else "conversation_created"
            if kind < 0.92
            else "status_changed"
            if kind < 0.98
            else "sla_breached"
        )
        status = rng.choice(STATUSES)
        event = Event(
            event_type=event_type,
            conversation_id=_uuid(rng),
            contact_id=_uuid(rng),
            channel=rng.choice(CHANNELS),
            status="resolved" if event_type == "status_changed" and rng.random() < 0.5 else status,
            assigned_agent_id=_uuid(rng) if rng.random() < 0.5 else None,
            division_id=world.division() if rng.random() < 0.9 else None,
            tags=frozenset(rng.sample(TAGS, rng.choice([0, 0, 1, 1, 2]))),
            priority=rng.choice(PRIORITIES),
            handled_by="human",
            message_text=_text(rng, world) if event_type == "message_received_inbound" else None,
            message_type="text" if event_type == "message_received_inbound" else None,
            previous_status=rng.choice(["open", "pending"]) if event_type == "status_changed" else None,
        )
        context = MatchContext(now=NOW + timedelta(seconds=rng.randint(0, 3600)), in_business_hours=rng.random() < 0.7)
        events.append((event, context))
    return events


def _fresh(events: Sequence[tuple[Event, MatchContext]]) -> list[tuple[Event, MatchContext]]:
    """Copies, so that nothing an evaluation might remember about an event object helps the next."""
    return [(Event(**{f: getattr(e, f) for f in Event.__struct_fields__}), c) for e, c in events]


def throughput(match: Callable[[Event, MatchContext], object], events: Sequence[tuple[Event, MatchContext]],
               seconds: float) -> float:  # fmt: skip
    """Events per second of this process's CPU time, going round the events until it has used
    `seconds`: on a shared machine, time spent waiting for a core is not the matcher's."""
    batch = _fresh(events)
    chunks = [batch[i : i + 50] for i in range(0, len(batch), 50)]
    gc.collect()
    done = 0
    started = time.process_time()
    while True:
        for chunk in chunks:
            for event, context in chunk:
                match(event, context)
            done += len(chunk)
            elapsed = time.process_time() - started
            if elapsed >= seconds:
                return done / elapsed


class LoadedPerEvent:
    """(c): the rules stored once for a tenant of their own, then for each event all of the
    tenant's rules read back (`automation.repository.rules_for_matching`, decoded into
    AutomationRule) and interpreted."""

    def __init__(self, app_url: str) -> None:
        self.loop = uvloop.new_event_loop()
        self.db = self.loop.run_until_complete(Database.connect(app_url, min_size=1, max_size=2))

    def close(self) -> None:
        self.loop.run_until_complete(self.db.close())
        self.loop.close()

    def rate(self, rules: Sequence[AutomationRule], events: Sequence[tuple[Event, MatchContext]], seconds: float,
             control: AutomationControl) -> float:  # fmt: skip
        return self.loop.run_until_complete(self._rate(rules, events, seconds, control))

    async def _rate(self, rules: Sequence[AutomationRule], events: Sequence[tuple[Event, MatchContext]],
                    seconds: float, control: AutomationControl) -> float:  # fmt: skip
        tenant_id = await new_tenant(self.db)
        columns = [f for f in AutomationRule.__struct_fields__ if f not in ("created_by", "updated_by")]
        records = [
            (tenant_id, *(msgspec.to_builtins(getattr(rule, f)) if f in JSON_FIELDS else getattr(rule, f)
                          for f in columns))
            for rule in rules
        ]  # fmt: skip
        async with self.db.tenant(tenant_id) as conn:
            await conn.executemany(
                f"INSERT INTO automation_rules (tenant_id, {', '.join(columns)}) "
                f"VALUES ({', '.join(f'${i + 1}' for i in range(len(columns) + 1))})",
                records,
            )
        batch = _fresh(events)
        done = 0
        started = time.perf_counter()
        while True:
            for event, context in batch:
                async with self.db.read(tenant_id) as conn:
                    stored = await rules_for_matching(conn, tenant_id)
                ReferenceInterpreter(stored, control).match(event, context)
                done += 1
                elapsed = time.perf_counter() - started
                if elapsed >= seconds:
                    return done / elapsed


JSON_FIELDS = ("conditions", "actions", "alert_settings", "schedule_settings")


def run(sizes: Sequence[int], seconds: float, event_count: int, seed: int, rounds: int,
        loaded: LoadedPerEvent | None) -> None:  # fmt: skip
    control = AutomationControl(singleton=True, is_paused=False, updated_at=NOW)
    print(
        f"rule matching: {event_count} events, {seconds:g} s per side and size in {rounds} alternating rounds "
        f"(the best round counts), seed {seed}"
    )
    print(f"  {'rules':>6} {'compile ms':>11} {'matches/ev':>10} {'(a) matcher ev/s':>17} "
          f"{'(b) interpreter ev/s':>21} {'a/b':>8} {'(c) PG+interp ev/s':>19}")  # fmt: skip
    matcher_rate: dict[int, float] = {}
    interpreter_rate: dict[int, float] = {}
    loaded_rate: dict[int, float] = {}
    for size in sizes:
        rng = random.Random(seed + size)
        world = World(rng, size)
        rules = make_rules(rng, world, size)
        events = make_events(rng, world, event_count)
        compile_ms = float("inf")
        for _ in range(3):
            started = time.process_time()
            compiled = compile_rules(rules, control)
            compile_ms = min(compile_ms, (time.process_time() - started) * 1000)
        interpreter = ReferenceInterpreter(rules, control)
        checked = events[: max(200, min(len(events), 2_000_000 // max(size, 1)))]
        for event, context in checked:
            got = [m.rule.id for m in compiled.match(event, context)]
            want = [m.rule.id for m in interpreter.match(event, context)]
            assert got == want, f"matcher and interpreter disagree at {size} rules on {event}"
        matches = sum(len(compiled.match(event, context)) for event, context in events)
        # Alternate the two, best of the rounds: a busy machine slows whichever runs when it is busy.
        a = b = 0.0
        for _ in range(rounds):
            a = max(a, throughput(compiled.match, events, seconds / rounds))
            b = max(b, throughput(interpreter.match, events, seconds / rounds))
        c = loaded.rate(rules, events, seconds, control) if loaded else None
        matcher_rate[size], interpreter_rate[size] = a, b
        if c is not None:
            loaded_rate[size] = c
        c_text = f"{c:,.1f}" if c is not None else "left out"
        print(f"  {size:>6,} {compile_ms:>11,.1f} {matches / len(events):>10.2f} {a:>17,.0f} {b:>21,.0f} "
              f"{a / b:>7,.0f}x {c_text:>19}")  # fmt: skip
    largest = max(sizes)
    if 100 in matcher_rate and largest != 100:
        ratio = matcher_rate[largest] / matcher_rate[100]
        verdict = "met" if ratio >= 1 / 3 else "NOT MET"
        print(
            f"  matcher at {largest:,} rules vs at 100: {ratio:.2f} of the throughput (target at least 0.33: {verdict})"
        )
    if 1000 in interpreter_rate:
        ratio = matcher_rate[1000] / interpreter_rate[1000]
        verdict = "met" if ratio >= 100 else "NOT MET"
        print(f"  at 1,000 rules the matcher is {ratio:,.0f}x the interpreter (target at least 100x: {verdict})")
    if 1000 in loaded_rate:
        ratio = matcher_rate[1000] / loaded_rate[1000]
        print(f"  at 1,000 rules the matcher is {ratio:,.0f}x loading the rules from PostgreSQL for each event")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,100,1000,10000")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-postgres", action="store_true", help="leave out (c)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.no_postgres:
        run(sizes, args.seconds, args.events, args.seed, args.rounds, None)
        return
    with servers() as urls:
        loaded = LoadedPerEvent(urls.app_url)
        try:
            run(sizes, args.seconds, args.events, args.seed, args.rounds, loaded)
        finally:
            loaded.close()


if __name__ == "__main__":
    main()
