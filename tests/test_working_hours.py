"""Working hours, division overrides, the tenant time zone and the public status, over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from omnistream.app import create_app
from omnistream.config import Settings
from omnistream.db import Database
from omnistream.working_hours import service as working_hours
from tests.conftest import Tenant, create_agent, problem, register

NOWHERE = "00000000-0000-4000-8000-000000000000"

NINE_TO_FIVE = [{"weekday": d, "start": "09:00", "end": "17:00"} for d in range(5)]
ALWAYS = [{"weekday": d, "start": "00:00", "end": "24:00"} for d in range(7)]


def error_fields(body: dict[str, Any]) -> set[str]:
    return {error["field"] for error in body.get("errors") or []}


def parse_time(text: str) -> datetime:
    assert text.endswith("Z"), text  # RFC 3339 in UTC
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)


async def get_hours(client: AsyncTestClient, tenant: Tenant) -> dict[str, Any]:
    response = await client.get("/api/working-hours", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def put_hours(
    client: AsyncTestClient, tenant: Tenant, periods: list[dict], holidays: list[dict] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"periods": periods} | ({"holidays": holidays} if holidays is not None else {})
    response = await client.put("/api/working-hours", json=body, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def new_division(client: AsyncTestClient, tenant: Tenant) -> str:
    response = await client.post("/api/divisions", json={"name": f"Division {uuid4().hex[:8]}"}, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def actions(client: AsyncTestClient, tenant: Tenant, action: str) -> list[dict[str, Any]]:
    response = await client.get(
        "/api/activity-logs", params={"action": action, "per_page": 100}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    return response.json()["activity_logs"]


async def public(client: AsyncTestClient, slug: str, **params: str) -> httpx.Response:
    return await client.get(f"/api/public/working-hours/{slug}", params=params)


async def set_timezone(client: AsyncTestClient, tenant: Tenant, timezone: str) -> None:
    response = await client.put("/api/tenant/timezone", json={"timezone": timezone}, headers=tenant.headers)
    assert response.status_code == 200, response.text


# ---------------------------------------------------------------- the global schedule


async def test_a_schedule_never_set_is_empty_in_the_tenants_zone(client: AsyncTestClient) -> None:
    tenant = await register(client, timezone="Europe/Berlin")
    assert await get_hours(client, tenant) == {
        "timezone": "Europe/Berlin",
        "periods": [],
        "holidays": [],
        "updated_at": None,
    }


async def test_put_stores_split_shifts_and_holidays_in_order(client: AsyncTestClient, tenant: Tenant) -> None:
    periods = [
        {"weekday": 2, "start": "13:00", "end": "18:00"},
        {"weekday": 0, "start": "09:00", "end": "12:00"},
        {"weekday": 2, "start": "08:30", "end": "12:00"},
        {"weekday": 6, "start": "20:00", "end": "24:00"},
        {"weekday": 0, "start": "12:00", "end": "15:00"},  # touching the morning shift is not overlapping
    ]
    holidays = [
        {"date": "2025-12-26", "name": "Boxing Day", "periods": []},
        {"date": "2025-12-24", "name": "Christmas Eve", "periods": [{"start": "09:00", "end": "12:00"}]},
    ]
    stored = await put_hours(client, tenant, periods, holidays)
    assert stored["timezone"] == "UTC"
    assert stored["periods"] == [
        {"weekday": 0, "start": "09:00", "end": "12:00"},
        {"weekday": 0, "start": "12:00", "end": "15:00"},
        {"weekday": 2, "start": "08:30", "end": "12:00"},
        {"weekday": 2, "start": "13:00", "end": "18:00"},
        {"weekday": 6, "start": "20:00", "end": "24:00"},
    ]
    assert [h["date"] for h in stored["holidays"]] == ["2025-12-24", "2025-12-26"]
    assert stored["holidays"][0] == {
        "date": "2025-12-24",
        "name": "Christmas Eve",
        "periods": [{"start": "09:00", "end": "12:00"}],
    }
    assert abs(parse_time(stored["updated_at"]) - datetime.now(UTC)) < timedelta(minutes=1)
    assert await get_hours(client, tenant) == stored

    logged = await actions(client, tenant, "working_hours.updated")
    assert len(logged) == 1
    assert logged[0]["details"] == {"periods": 5, "holidays": 2}
    assert logged[0]["actor_id"] == tenant.admin_id


async def test_put_replaces_the_whole_schedule(client: AsyncTestClient, tenant: Tenant) -> None:
    await put_hours(client, tenant, NINE_TO_FIVE, [{"date": "2026-01-01", "name": "New Year"}])
    replaced = await put_hours(client, tenant, [{"weekday": 5, "start": "10:00", "end": "14:00"}])
    assert replaced["periods"] == [{"weekday": 5, "start": "10:00", "end": "14:00"}]
    assert replaced["holidays"] == []
    assert await get_hours(client, tenant) == replaced
    assert len(await actions(client, tenant, "working_hours.updated")) == 2


async def test_a_holiday_without_periods_defaults_to_closed(client: AsyncTestClient, tenant: Tenant) -> None:
    stored = await put_hours(client, tenant, [], [{"date": "2026-05-01", "name": "Labour Day"}])
    assert stored["holidays"] == [{"date": "2026-05-01", "name": "Labour Day", "periods": []}]


def period(**overrides: Any) -> dict[str, Any]:
    return {"weekday": 0, "start": "09:00", "end": "17:00"} | overrides


BAD_SCHEDULES = {
    "overlap": ({"periods": [period(), period(start="16:00", end="18:00")]}, "periods[1]"),
    "overlap, given in reverse": ({"periods": [period(start="16:00", end="18:00"), period()]}, "periods[0]"),
    "contained": ({"periods": [period(), period(start="10:00", end="11:00")]}, "periods[1]"),
    "same period twice": ({"periods": [period(), period()]}, None),
    "end before start": ({"periods": [period(start="17:00", end="09:00")]}, "periods[0].end"),
    "end equal to start": ({"periods": [period(start="09:00", end="09:00")]}, "periods[0].end"),
    "25:00": ({"periods": [period(end="25:00")]}, None),
    "24:01": ({"periods": [period(end="24:01")]}, None),
    "start 24:00": ({"periods": [period(start="24:00", end="24:00")]}, None),
    "minute 60": ({"periods": [period(start="09:60")]}, None),
    "one-digit hour": ({"periods": [period(start="9:00")]}, None),
    "seconds": ({"periods": [period(start="09:00:00")]}, None),
    "weekday 7": ({"periods": [period(weekday=7)]}, None),
    "weekday -1": ({"periods": [period(weekday=-1)]}, None),
    # Litestar converts bodies leniently (a numeric string would pass as an int), so: a name.
    "weekday as text": ({"periods": [period(weekday="Monday")]}, None),
    "weekday null": ({"periods": [period(weekday=None)]}, None),
    "weekday as bool": ({"periods": [period(weekday=True)]}, None),
    "weekday as float": ({"periods": [period(weekday=1.5)]}, None),
    "time as number": ({"periods": [period(start=900)]}, None),
    "periods not a list": ({"periods": {"weekday": 0}}, None),
    "periods missing": ({"holidays": []}, "periods"),
    "period without end": ({"periods": [{"weekday": 0, "start": "09:00"}]}, None),
    "unknown top-level field": ({"periods": [], "timezone": "UTC"}, "timezone"),
    "unknown period field": ({"periods": [period(note="x")]}, None),
    "February 30": ({"periods": [], "holidays": [{"date": "2025-02-30", "name": "x"}]}, None),
    "month 13": ({"periods": [], "holidays": [{"date": "2025-13-01", "name": "x"}]}, None),
    "two-digit year": ({"periods": [], "holidays": [{"date": "25-12-25", "name": "x"}]}, None),
    "date with time": ({"periods": [], "holidays": [{"date": "2025-12-25T00:00:00", "name": "x"}]}, None),
    "holiday without name": ({"periods": [], "holidays": [{"date": "2025-12-25"}]}, None),
    "blank holiday name": ({"periods": [], "holidays": [{"date": "2025-12-25", "name": "  "}]}, None),
    "unknown holiday field": ({"periods": [], "holidays": [{"date": "2025-12-25", "name": "x", "open": False}]}, None),
    "weekday in holiday period": (
        {"periods": [], "holidays": [{"date": "2025-12-25", "name": "x", "periods": [period()]}]},
        None,
    ),
    "duplicate holiday": (
        {"periods": [], "holidays": [{"date": "2025-12-25", "name": "a"}, {"date": "2025-12-25", "name": "b"}]},
        "holidays[1].date",
    ),
    "holiday periods overlap": (
        {
            "periods": [],
            "holidays": [
                {
                    "date": "2025-12-24",
                    "name": "x",
                    "periods": [{"start": "09:00", "end": "12:00"}, {"start": "11:00", "end": "13:00"}],
                }
            ],
        },
        "holidays[0].periods[1]",
    ),
    "holiday period ends before it starts": (
        {
            "periods": [],
            "holidays": [{"date": "2025-12-24", "name": "x", "periods": [{"start": "12:00", "end": "09:00"}]}],
        },
        "holidays[0].periods[0].end",
    ),
}


# Well-formed periods that break a rule of schedules (order, overlap, one entry per date): 422.
AGAINST_A_RULE = {
    "overlap",
    "overlap, given in reverse",
    "contained",
    "same period twice",
    "end before start",
    "end equal to start",
    "duplicate holiday",
    "holiday periods overlap",
    "holiday period ends before it starts",
}


@pytest.mark.parametrize("case", BAD_SCHEDULES)
async def test_bad_schedules_are_refused_and_nothing_is_stored(
    client: AsyncTestClient, tenant: Tenant, case: str
) -> None:
    body, field = BAD_SCHEDULES[case]
    before = await put_hours(client, tenant, NINE_TO_FIVE)
    division_id = await new_division(client, tenant)
    for path in ("/api/working-hours", f"/api/divisions/{division_id}/working-hours"):
        status = 422 if case in AGAINST_A_RULE else 400
        refused = problem(await client.put(path, json=body, headers=tenant.headers), status)
        if field is not None:
            assert field in error_fields(refused), refused
    assert await get_hours(client, tenant) == before
    division = (await client.get(f"/api/divisions/{division_id}/working-hours", headers=tenant.headers)).json()
    assert division["inherits_global"] is True
    assert len(await actions(client, tenant, "working_hours.updated")) == 1


async def test_a_body_that_is_not_json_is_refused(client: AsyncTestClient, tenant: Tenant) -> None:
    headers = tenant.headers | {"content-type": "application/json"}
    problem(await client.put("/api/working-hours", content=b"{not json", headers=headers), 400)
    assert (await get_hours(client, tenant))["updated_at"] is None


# ---------------------------------------------------------------- division overrides


async def test_a_division_inherits_until_it_has_an_override(client: AsyncTestClient, tenant: Tenant) -> None:
    global_hours = await put_hours(client, tenant, NINE_TO_FIVE)
    division_id = await new_division(client, tenant)
    path = f"/api/divisions/{division_id}/working-hours"

    inherited = (await client.get(path, headers=tenant.headers)).json()
    assert inherited == {
        "division_id": division_id,
        "timezone": "UTC",
        "inherits_global": True,
        "override": None,
        "effective": {
            "periods": global_hours["periods"],
            "holidays": [],
            "updated_at": global_hours["updated_at"],
        },
    }

    weekend = [{"weekday": 5, "start": "10:00", "end": "16:00"}]
    response = await client.put(path, json={"periods": weekend}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    overridden = response.json()
    assert overridden["inherits_global"] is False
    assert overridden["override"]["periods"] == weekend
    assert overridden["effective"] == overridden["override"]
    assert (await client.get(path, headers=tenant.headers)).json() == overridden
    # The global schedule is untouched.
    assert (await get_hours(client, tenant))["periods"] == global_hours["periods"]

    logged = await actions(client, tenant, "working_hours.updated")
    assert (logged[0]["object_type"], logged[0]["object_id"]) == ("division", division_id)

    deleted = await client.delete(path, headers=tenant.headers)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"message": "division working hours override deleted", "id": division_id}
    assert (await client.get(path, headers=tenant.headers)).json() == inherited
    assert len(await actions(client, tenant, "working_hours.override_deleted")) == 1

    problem(await client.delete(path, headers=tenant.headers), 404)  # nothing left to delete


async def test_a_division_of_a_tenant_without_any_schedule_is_always_closed(
    client: AsyncTestClient, tenant: Tenant
) -> None:
    division_id = await new_division(client, tenant)
    body = (await client.get(f"/api/divisions/{division_id}/working-hours", headers=tenant.headers)).json()
    assert body["inherits_global"] is True
    assert body["effective"] == {"periods": [], "holidays": [], "updated_at": None}


async def test_another_tenants_or_a_missing_division_is_not_found(
    client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = await new_division(client, other_tenant)
    their_path = f"/api/divisions/{theirs}/working-hours"
    ok = await client.put(their_path, json={"periods": NINE_TO_FIVE}, headers=other_tenant.headers)
    assert ok.status_code == 200, ok.text

    for division_id in (theirs, NOWHERE):
        path = f"/api/divisions/{division_id}/working-hours"
        problem(await client.get(path, headers=tenant.headers), 404)
        problem(await client.put(path, json={"periods": ALWAYS}, headers=tenant.headers), 404)
        problem(await client.delete(path, headers=tenant.headers), 404)

    # Theirs is untouched, and nothing was logged for us.
    kept = (await client.get(their_path, headers=other_tenant.headers)).json()
    assert kept["override"]["periods"] == NINE_TO_FIVE
    assert await actions(client, tenant, "working_hours.updated") == []
    assert (await client.get("/api/divisions/not-a-uuid/working-hours", headers=tenant.headers)).status_code == 404


async def test_deleting_the_division_deletes_its_override(client: AsyncTestClient, tenant: Tenant) -> None:
    division_id = await new_division(client, tenant)
    path = f"/api/divisions/{division_id}/working-hours"
    assert (await client.put(path, json={"periods": ALWAYS}, headers=tenant.headers)).status_code == 200
    assert (await client.delete(f"/api/divisions/{division_id}", headers=tenant.headers)).status_code == 200
    problem(await client.get(path, headers=tenant.headers), 404)


# ---------------------------------------------------------------- who may do what


async def test_agents_read_but_only_admins_change(client: AsyncTestClient, tenant: Tenant) -> None:
    await put_hours(client, tenant, NINE_TO_FIVE)
    division_id = await new_division(client, tenant)
    division_path = f"/api/divisions/{division_id}/working-hours"
    assert (await client.put(division_path, json={"periods": ALWAYS}, headers=tenant.headers)).status_code == 200

    for role in ("agent", "supervisor"):
        headers = (await create_agent(client, tenant, role))["headers"]
        assert (await client.get("/api/working-hours", headers=headers)).status_code == 200
        assert (await client.get(division_path, headers=headers)).status_code == 200
        assert (await client.get("/api/tenant/timezone", headers=headers)).status_code == 200
        problem(await client.put("/api/working-hours", json={"periods": []}, headers=headers), 403)
        problem(await client.put(division_path, json={"periods": []}, headers=headers), 403)
        problem(await client.delete(division_path, headers=headers), 403)
        problem(await client.put("/api/tenant/timezone", json={"timezone": "Asia/Tokyo"}, headers=headers), 403)

    assert (await get_hours(client, tenant))["periods"] == NINE_TO_FIVE
    assert (await client.get(division_path, headers=tenant.headers)).json()["override"]["periods"] == ALWAYS
    assert (await get_hours(client, tenant))["timezone"] == "UTC"


async def test_signed_out_callers_are_refused(client: AsyncTestClient, tenant: Tenant) -> None:
    assert (await client.get("/api/working-hours")).status_code == 401
    assert (await client.put("/api/working-hours", json={"periods": []})).status_code == 401
    assert (await client.get("/api/tenant/timezone")).status_code == 401


# ---------------------------------------------------------------- the time zone


async def test_timezone_is_read_and_changed(client: AsyncTestClient, tenant: Tenant) -> None:
    response = await client.get("/api/tenant/timezone", headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"timezone": "UTC"}

    response = await client.put("/api/tenant/timezone", json={"timezone": "America/New_York"}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"timezone": "America/New_York"}
    assert (await client.get("/api/tenant/timezone", headers=tenant.headers)).json() == {"timezone": "America/New_York"}
    assert (await get_hours(client, tenant))["timezone"] == "America/New_York"
    me = (await client.get("/api/auth/me", headers=tenant.headers)).json()
    assert me["tenant"]["timezone"] == "America/New_York"

    logged = await actions(client, tenant, "tenant.timezone_changed")
    assert len(logged) == 1
    assert logged[0]["object_id"] == tenant.id
    assert logged[0]["details"] == {"timezone": "America/New_York", "previous": "UTC"}


@pytest.mark.parametrize(
    "body",
    [
        {"timezone": "Mars/Olympus"},
        {"timezone": "europe/berlin"},
        {"timezone": "localtime"},
        {"timezone": ""},
        {"timezone": "x" * 65},
        {"timezone": 1},
        {"timezone": None},
        {},
        {"timezone": "Europe/Berlin", "region": "EU"},
    ],
    ids=["unknown", "wrong case", "localtime", "empty", "too long", "number", "null", "missing", "unknown field"],
)
async def test_bad_timezones_are_refused(client: AsyncTestClient, tenant: Tenant, body: dict[str, Any]) -> None:
    # A string that names no IANA zone is well-formed but no zone: 422; anything else is malformed.
    no_such_zone = isinstance(body.get("timezone"), str) and 0 < len(body["timezone"]) <= 64 and len(body) == 1
    refused = problem(
        await client.put("/api/tenant/timezone", json=body, headers=tenant.headers), 422 if no_such_zone else 400
    )
    assert error_fields(refused) & {"timezone", "region", "data"}, refused
    assert (await client.get("/api/tenant/timezone", headers=tenant.headers)).json() == {"timezone": "UTC"}
    assert await actions(client, tenant, "tenant.timezone_changed") == []


# ---------------------------------------------------------------- the public status


async def test_public_status_needs_no_sign_in(client: AsyncTestClient, tenant: Tenant) -> None:
    await put_hours(client, tenant, ALWAYS)
    response = await public(client, tenant.slug)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["open"] is True
    assert body["timezone"] == "UTC"
    assert abs(parse_time(body["now"]) - datetime.now(UTC)) < timedelta(minutes=1)
    assert body["next_close_at"] is None  # open around the clock
    assert body["next_open_at"] is None
    # The slug is not case-sensitive.
    assert (await public(client, tenant.slug.upper())).json()["open"] is True


async def test_public_status_of_a_schedule_never_set_is_closed(client: AsyncTestClient, tenant: Tenant) -> None:
    body = (await public(client, tenant.slug)).json()
    assert body["open"] is False
    assert body["next_open_at"] is None
    assert body["next_close_at"] is None


async def test_public_status_closed_on_holidays_says_when_it_opens(client: AsyncTestClient, tenant: Tenant) -> None:
    zone = ZoneInfo("Asia/Jakarta")
    await set_timezone(client, tenant, "Asia/Jakarta")
    today = datetime.now(zone).date()
    closed_days = [today + timedelta(days=n) for n in (-1, 0, 1)]
    await put_hours(client, tenant, ALWAYS, [{"date": d.isoformat(), "name": "Closed"} for d in closed_days])

    body = (await public(client, tenant.slug)).json()
    assert body["open"] is False
    assert body["timezone"] == "Asia/Jakarta"
    assert parse_time(body["next_open_at"]) == local_midnight(today + timedelta(days=2), zone)
    assert body["next_close_at"] is None  # open around the clock after that


async def test_public_status_open_says_when_it_closes(client: AsyncTestClient, tenant: Tenant) -> None:
    zone = ZoneInfo("Australia/Lord_Howe")
    await set_timezone(client, tenant, "Australia/Lord_Howe")
    today = datetime.now(zone).date()
    holiday = today + timedelta(days=3)
    await put_hours(client, tenant, ALWAYS, [{"date": holiday.isoformat(), "name": "Closed"}])

    body = (await public(client, tenant.slug)).json()
    assert body["open"] is True
    assert parse_time(body["next_close_at"]) == local_midnight(holiday, zone)
    assert parse_time(body["next_open_at"]) == local_midnight(holiday + timedelta(days=1), zone)


async def test_public_status_of_a_division_uses_its_override(
    client: AsyncTestClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    await put_hours(client, tenant, [])  # the tenant is always closed
    division_id = await new_division(client, tenant)
    inheriting = await new_division(client, tenant)
    path = f"/api/divisions/{division_id}/working-hours"
    assert (await client.put(path, json={"periods": ALWAYS}, headers=tenant.headers)).status_code == 200

    assert (await public(client, tenant.slug)).json()["open"] is False
    assert (await public(client, tenant.slug, division_id=division_id)).json()["open"] is True
    assert (await public(client, tenant.slug, division_id=inheriting)).json()["open"] is False

    theirs = await new_division(client, other_tenant)
    problem(await public(client, tenant.slug, division_id=theirs), 404)
    problem(await public(client, tenant.slug, division_id=NOWHERE), 404)
    problem(await public(client, tenant.slug, division_id="not-a-uuid"), 400)


async def test_public_status_of_an_unknown_or_suspended_tenant_is_not_found(
    client: AsyncTestClient, tenant: Tenant, database: str
) -> None:
    problem(await public(client, "no-such-org"), 404)
    problem(await public(client, "x" * 64), 400)

    assert (await public(client, tenant.slug)).status_code == 200
    admin = await asyncpg.connect(database)
    try:
        await admin.execute("UPDATE tenants SET status = 'suspended' WHERE id = $1", UUID(tenant.id))
    finally:
        await admin.close()
    problem(await public(client, tenant.slug), 404)


# ---------------------------------------------------------------- for the automation engine


@pytest.fixture
async def app_db(settings: Settings) -> AsyncIterator[Database]:
    """A pool of the app's own role on this test's event loop (the app's pool lives on the client's)."""
    db = await Database.connect(settings.database_url, min_size=1, max_size=1)
    yield db
    await db.close()


async def test_is_open_uses_the_division_override_else_the_global_schedule(
    client: AsyncTestClient, tenant: Tenant, app_db: Database
) -> None:
    await set_timezone(client, tenant, "America/New_York")
    await put_hours(client, tenant, NINE_TO_FIVE)
    division_id = await new_division(client, tenant)
    weekend_path = f"/api/divisions/{division_id}/working-hours"
    weekend = [{"weekday": d, "start": "10:00", "end": "14:00"} for d in (5, 6)]
    assert (await client.put(weekend_path, json={"periods": weekend}, headers=tenant.headers)).status_code == 200

    tenant_id, division = UUID(tenant.id), UUID(division_id)
    monday_10am = datetime(2025, 6, 2, 14, 0, tzinfo=UTC)  # 10:00 EDT
    saturday_11am = datetime(2025, 6, 7, 15, 0, tzinfo=UTC)  # 11:00 EDT
    monday_8am = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)  # 08:00 EDT, 12:00 UTC
    async with app_db.tenant(tenant_id) as conn:
        assert await working_hours.is_open(conn, tenant_id, None, monday_10am)
        assert not await working_hours.is_open(conn, tenant_id, None, monday_8am)
        assert not await working_hours.is_open(conn, tenant_id, None, saturday_11am)
        assert not await working_hours.is_open(conn, tenant_id, division, monday_10am)
        assert await working_hours.is_open(conn, tenant_id, division, saturday_11am)

    assert (await client.delete(weekend_path, headers=tenant.headers)).status_code == 200
    async with app_db.tenant(tenant_id) as conn:
        assert await working_hours.is_open(conn, tenant_id, division, monday_10am)
        assert not await working_hours.is_open(conn, tenant_id, division, saturday_11am)


async def test_public_status_is_rate_limited_per_client_address(settings: Settings, tenant: Tenant) -> None:
    # A prefix of its own: the tenant's sign-up has already spent some of the shared budget.
    limited = msgspec.structs.replace(
        settings, public_requests_per_minute=3, redis_prefix=f"{settings.redis_prefix}-limited"
    )
    async with AsyncTestClient(app=create_app(limited)) as client:
        for _ in range(3):
            assert (await public(client, tenant.slug)).status_code == 200
        refused = await public(client, tenant.slug)
        body = problem(refused, 429)
        assert "too many requests from this address" in body["detail"]
        assert int(refused.headers["retry-after"]) > 0
        assert refused.headers["ratelimit-limit"] == "3"
        # Another organisation's page, and signing up, share the budget of the same address.
        assert (await public(client, "another-org")).status_code == 429
        sign_up = {"organization_name": "Late", "name": "L", "email": "late@example.com", "password": "long enough"}
        assert (await client.post("/api/auth/register", json=sign_up)).status_code == 429
        # Authenticated traffic is not limited.
        for _ in range(5):
            assert (await client.get("/api/working-hours", headers=tenant.headers)).status_code == 200
