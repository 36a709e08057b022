"""One error type for the whole service; every error leaves as RFC 9457 problem details."""

from __future__ import annotations

import ast
import re
from typing import Any

import asyncpg
import redis.exceptions
import structlog
from litestar.exceptions import HTTPException, ValidationException
from litestar.plugins.problem_details import (
    ProblemDetailsConfig,
    ProblemDetailsException,
    ProblemDetailsPlugin,
)

from omnistream.kit.schema import pattern_words

log = structlog.get_logger(__name__)


class AppError(Exception):
    """A failure the client can act on. Subclasses fix the status code and title."""

    status_code = 400
    title = "Bad request"

    def __init__(
        self, detail: str, *, field: str | None = None, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.headers = headers
        self.extra = extra


class BadRequest(AppError):
    status_code = 400
    title = "Bad request"


class Unauthorized(AppError):
    status_code = 401
    title = "Unauthorized"


class Forbidden(AppError):
    status_code = 403
    title = "Forbidden"


class NotFound(AppError):
    status_code = 404
    title = "Not found"


class Conflict(AppError):
    status_code = 409
    title = "Conflict"


class Gone(AppError):
    """What the path named existed but is over for good (an expired link)."""

    status_code = 410
    title = "Gone"


class Unprocessable(AppError):
    status_code = 422
    title = "Unprocessable content"


class TooManyRequests(AppError):
    status_code = 429
    title = "Too many requests"


class PayloadTooLarge(AppError):
    status_code = 413
    title = "Content too large"


class BadGateway(AppError):
    """A provider (Meta's Graph API, an SMTP server, S3) refused or failed what we asked of it;
    the detail carries its answer. Declared on routes that call one with `opt={ERRORS: (502,)}`."""

    status_code = 502
    title = "Bad gateway"


def not_found(kind: str) -> NotFound:
    return NotFound(f"{kind} not found")


def _problem(
    status: int, title: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> ProblemDetailsException:
    return ProblemDetailsException(
        status_code=status,
        title=title,
        detail=detail,
        type_="about:blank",
        headers=headers,
        extra={k: v for k, v in extra.items() if v is not None},
    )


def from_app_error(exc: AppError) -> ProblemDetailsException:
    errors = [{"field": exc.field, "message": exc.detail}] if exc.field else None
    return _problem(exc.status_code, exc.title, exc.detail, exc.headers, errors=errors, **exc.extra)


# msgspec names a pattern a value breaks by its regular expression (as a Python literal); the
# client is told the pattern's words instead (kit.schema.pattern).
_BROKEN_PATTERN = re.compile(r"Expected `str` matching regex (?P<regex>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")")


def in_words(message: str) -> str:
    broken = _BROKEN_PATTERN.search(message)
    if broken is None:
        return message
    words = pattern_words(ast.literal_eval(broken["regex"]))
    return message[: broken.start()] + words + message[broken.end() :]


# msgspec reports a missing or unknown field at the object that holds it ("data" for the body).
_NAMED_FIELD = re.compile(r"^Object (?:missing required|contains unknown) field `([^`]+)`")


# Litestar's words for a required query, header or cookie parameter left out; it lists no field.
_MISSING_PARAMETER = re.compile(r"^Missing required (\w+) parameter '([^']+)'")


def _error_field(item: dict[str, Any]) -> str:
    key = item.get("key") or "body"
    named = _NAMED_FIELD.match(str(item.get("message") or ""))
    if named and item.get("source") == "body":
        return named.group(1) if key == "data" else f"{key}.{named.group(1)}"
    return key


def from_validation_error(exc: ValidationException) -> ProblemDetailsException:
    errors = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if isinstance(item, dict):
            field, message = _error_field(item), item.get("message")
            if isinstance(message, str):
                message = in_words(message)
            if field == "data" and item.get("source") == "body" and message == "'data'":
                message = "a JSON request body is required"  # Litestar's own words are just "'data'"
            errors.append({"field": field, "source": item.get("source"), "message": message})
    if not errors and (missing := _MISSING_PARAMETER.match(exc.detail or "")):
        errors.append({"field": missing.group(2), "source": missing.group(1), "message": "is required"})
    if errors:
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    else:
        detail = exc.detail or "the request is not valid"
    return _problem(400, "Validation failed", detail, errors=errors or None)


_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    413: "Content too large",
    415: "Unsupported media type",
    429: "Too many requests",
}


def from_http_error(exc: HTTPException) -> ProblemDetailsException:
    if isinstance(exc, ValidationException):
        return from_validation_error(exc)
    if exc.status_code >= 500:
        log.error("http error", status=exc.status_code, detail=exc.detail)
    extra = exc.extra if isinstance(exc.extra, dict) else {}
    detail, headers = str(exc.detail), exc.headers
    reset = (headers or {}).get("RateLimit-Reset")
    if exc.status_code == 429 and reset is not None:
        # Litestar's rate limit says only "Too Many Requests" and gives its wait as RateLimit-Reset.
        detail = f"too many requests from this address; try again in {reset} seconds"
        headers = {**headers, "Retry-After": reset}  # type: ignore[dict-item]
    if exc.status_code == 404 and detail == "Not Found":
        # The router's own words: no route matched, often an id in the path that is not a UUID.
        detail = "no endpoint has this path: check its spelling, and that each id in it is a UUID"
    return _problem(exc.status_code, _TITLES.get(exc.status_code, "HTTP error"), detail, headers, **extra)


# What a client is told of a value PostgreSQL refused, in the project's words: the driver's own
# text names internals (types, functions, the statement) and is only logged.
_DATA_ERROR_WORDS: tuple[tuple[type[asyncpg.DataError], str], ...] = (
    (asyncpg.exceptions.UntranslatableCharacterError, "a text value holds a character that cannot be stored (NUL)"),
    (asyncpg.exceptions.CharacterNotInRepertoireError, "a text value holds a character that cannot be stored"),
    (asyncpg.exceptions.StringDataRightTruncationError, "a text value is too long"),
    (asyncpg.exceptions.NumericValueOutOfRangeError, "a number is out of range"),
    (asyncpg.exceptions.DatetimeFieldOverflowError, "a date or time is out of range"),
    (asyncpg.exceptions.InvalidDatetimeFormatError, "a date or time is not valid"),
)


def from_data_error(exc: asyncpg.DataError) -> ProblemDetailsException:
    # Input that passed the schema but PostgreSQL cannot store: the client's mistake, so a 400,
    # logged because the schema should have caught it first.
    log.warning("database rejected a value", error=type(exc).__name__, message=str(exc))
    words = next((text for kind, text in _DATA_ERROR_WORDS if isinstance(exc, kind)), "a value could not be stored")
    return _problem(400, "Bad request", f"{words}; nothing was changed")


def from_too_deep(exc: RecursionError) -> ProblemDetailsException:
    # msgspec refuses JSON nested deeper than the interpreter's recursion limit this way, before
    # any handler runs; nothing else here recurses on input.
    log.warning("input nested too deeply", message=str(exc))
    return _problem(400, "Bad request", "the request body is nested too deeply")


def from_unavailable(exc: Exception) -> ProblemDetailsException:
    # PostgreSQL or Redis unreachable: the client may retry; nothing about it is a client error.
    log.error("a backing service is unavailable", error=type(exc).__name__, message=str(exc))
    return _problem(
        503, "Service unavailable", "a backing service is unavailable; try again shortly", headers={"Retry-After": "5"}
    )


def from_value_error(exc: ValueError) -> ProblemDetailsException:
    # msgspec's lenient conversion of request parameters and bodies (Litestar converts with
    # strict=False) lets some values through as a bare ValueError rather than a validation error:
    # a number as a date past year 9999, for one. Raised there, it is the client's input.
    frame = exc.__traceback__
    while frame is not None:
        if frame.tb_frame.f_code.co_name == "parse_values_from_connection_kwargs":
            return _problem(400, "Validation failed", f"a value in the request is out of range: {exc}")
        frame = frame.tb_next
    return from_unexpected(exc)


def from_unexpected(exc: Exception) -> ProblemDetailsException:
    log.exception("unhandled error", exc_info=exc)
    return _problem(500, "Internal server error", "an unexpected error occurred; it has been logged")


PROBLEM_DETAILS = ProblemDetailsPlugin(
    ProblemDetailsConfig(
        exception_to_problem_detail_map={
            AppError: from_app_error,
            HTTPException: from_http_error,
            asyncpg.DataError: from_data_error,
            RecursionError: from_too_deep,
            ValueError: from_value_error,
            redis.exceptions.ConnectionError: from_unavailable,
            redis.exceptions.TimeoutError: from_unavailable,
            asyncpg.exceptions.CannotConnectNowError: from_unavailable,
            asyncpg.exceptions.ConnectionDoesNotExistError: from_unavailable,
            ConnectionRefusedError: from_unavailable,
            Exception: from_unexpected,
        }
    )
)
