"""List parameters, keyset cursors (`ISO8601|uuid`) and the list envelope."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar
from uuid import UUID

import msgspec
from litestar.params import QueryParameter

from omnistream.errors import Unprocessable
from omnistream.kit.schema import pattern

MAX_PER_PAGE = 100
CURSOR = pattern(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?(?:Z|[+ -][0-9]{2}:[0-9]{2})?"
    r"\|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
    "must be a cursor as next_cursor gives it: an ISO 8601 time, |, an id",
)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Cursor:
    at: datetime
    id: UUID

    def encode(self) -> str:
        return f"{self.at.astimezone(UTC).isoformat().replace('+00:00', 'Z')}|{self.id}"

    @classmethod
    def decode(cls, raw: str) -> Cursor:
        # A '+' in an unencoded query string arrives as a space.
        text = raw.strip().replace(" ", "+")
        at_text, sep, id_text = text.partition("|")
        try:
            if not sep:
                raise ValueError("missing '|'")
            at = datetime.fromisoformat(at_text.replace("Z", "+00:00"))
            if at.tzinfo is None:
                at = at.replace(tzinfo=UTC)
            return cls(at=at, id=UUID(id_text))
        except ValueError as exc:
            raise Unprocessable("cursor does not name a real moment: use next_cursor as given", field="cursor") from exc


@dataclass(frozen=True, slots=True)
class ListParams:
    page: int
    per_page: int
    cursor: Cursor | None
    descending: bool

    @property
    def offset(self) -> int:
        # With a cursor the position comes from the cursor, not the page number.
        return 0 if self.cursor else (self.page - 1) * self.per_page

    def sql_args(self) -> dict[str, Any]:
        """Keyset, limit (one extra row tells whether there is a next page), offset (None when there
        is none to skip) and the flags that pick a list query's lines (see OptionalLinesQuery):
        `desc` or `asc` for the order, `after_desc` or `after_asc` to continue after the cursor."""
        direction = "desc" if self.descending else "asc"
        return {
            "cursor_at": self.cursor.at if self.cursor else None,
            "cursor_id": self.cursor.id if self.cursor else None,
            "limit": self.per_page + 1,
            "offset": self.offset or None,
            direction: True,
            f"after_{direction}": self.cursor is not None,
        }


def list_params(
    page: Annotated[int, QueryParameter(ge=1, le=100_000, description="1-based page (ignored with a cursor)")] = 1,
    per_page: Annotated[int, QueryParameter(ge=1, le=MAX_PER_PAGE, description="Items per page")] = 20,
    cursor: Annotated[
        str | None,
        QueryParameter(max_length=100, pattern=CURSOR, description="Keyset cursor from next_cursor: ISO8601|uuid"),
    ] = None,
    sort_order: Annotated[Literal["asc", "desc"], QueryParameter(description="Sort direction")] = "desc",
) -> ListParams:
    return ListParams(
        page=page,
        per_page=per_page,
        cursor=Cursor.decode(cursor) if cursor else None,
        descending=sort_order == "desc",
    )


def _by_creation(row: Any) -> Cursor:
    return Cursor(row.created_at, row.id)


def page_of(
    rows: list[T], params: ListParams, cursor_of: Callable[[T], Cursor] = _by_creation
) -> tuple[list[T], str | None]:
    """Trim the look-ahead row and make the cursor that continues after the last row."""
    if len(rows) > params.per_page:
        rows = rows[: params.per_page]
        return rows, cursor_of(rows[-1]).encode()
    return rows, None


QUERY_DATE_TIME = pattern(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?(?:Z|[+-][0-9]{2}:[0-9]{2})?$",
    "must be an ISO 8601 date-time, such as 2024-08-25T15:00:00Z (without an offset it is UTC)",
)
BODY_DATE_TIME = pattern(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:Z|[+-][0-9]{2}:[0-9]{2})$",
    "must be an RFC 3339 date-time with its offset, such as 2024-08-25T15:00:00Z",
)
BodyDateTime = Annotated[
    str,
    msgspec.Meta(
        pattern=BODY_DATE_TIME,
        extra_json_schema={"format": "date-time"},
        description="An RFC 3339 date-time with its offset, such as 2024-08-25T15:00:00Z",
    ),
]
"""A date-time in a request body, read by `query_moment`: a text the pattern fits and the calendar
does not (February 30th) is a 422, not a 400 the document would not foretell."""
QueryDateTime = Annotated[
    str | None,
    QueryParameter(
        max_length=40,
        pattern=QUERY_DATE_TIME,
        description="An ISO 8601 date-time, such as 2024-08-25T15:00:00Z; without an offset it is UTC",
    ),
]
"""A moment in a query string. Parsed here rather than by the framework, so that exactly the form
the pattern describes is read (the framework would also take a number of seconds, or a space)."""


def date_range(created_from: str | None, created_to: str | None) -> tuple[datetime | None, datetime | None]:
    """A list's creation-time filter: a time without an offset is UTC (as in cursors), and the
    range must not run backwards."""
    created_from = _utc(_moment(created_from, "created_from"), "created_from")
    created_to = _utc(_moment(created_to, "created_to"), "created_to")
    if created_from and created_to and created_from > created_to:
        raise Unprocessable("created_from must not be after created_to", field="created_from")
    return created_from, created_to


def query_moment(text: str | None, field: str) -> datetime | None:
    """A date-time query parameter (`QueryDateTime`) as a UTC time."""
    return _utc(_moment(text, field), field)


def _moment(text: str | None, field: str) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise Unprocessable(
            f"{field} names no real moment (the pattern fits, the calendar does not)", field=field
        ) from exc


def _utc(moment: datetime | None, field: str) -> datetime | None:
    """A time without an offset is UTC; one whose UTC falls outside years 1 to 9999 is refused
    here, before PostgreSQL would refuse it with its own words."""
    if moment is None:
        return None
    try:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise Unprocessable(f"{field} is out of range", field=field) from exc
