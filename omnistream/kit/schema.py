"""Base Structs: responses are plain Structs; request bodies refuse unknown fields."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

import msgspec


class Schema(msgspec.Struct, kw_only=True, omit_defaults=False):
    """A response shape."""


class Input(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A request body: a misspelt field is an error, not silently ignored."""


class Message(Schema):
    """The reply to a delete or another action without a richer result."""

    message: str
    id: str | None = None


_PATTERN_WORDS: dict[str, str] = {}
_ENGINE_DEPENDENT = re.compile(r"(?<!\\)\\[dDwWsSbB]")

WHITESPACE = r"\t\n\v\f\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
"""Every character either engine below calls a space, for use inside a character class."""


def pattern(regex: str, words: str) -> str:
    """A pattern for a schema, with what it asks for in words: a value that breaks it is refused
    with the words ("must be an email address"), never with the regular expression.

    One pattern string is both what msgspec enforces (Python's `re`) and what the OpenAPI document
    says (JSON Schema, whose patterns are ECMA 262), so it must mean the same to both: no `\\d`,
    `\\w`, `\\s` or `\\b`, whose classes differ between the two (Python's take in Unicode digits,
    letters and spaces); and a final `$` is followed by `(?!\\n)`, because Python's `$` also
    matches before a last newline, ECMA's does not."""
    if _ENGINE_DEPENDENT.search(regex):
        raise ValueError(f"{regex!r}: spell out the character class; \\d, \\w, \\s and \\b differ between engines")
    if regex.endswith("$"):
        regex += r"(?!\n)"
    _PATTERN_WORDS[regex] = words
    return regex


def pattern_words(regex: str) -> str:
    return _PATTERN_WORDS.get(regex, "does not have the expected form")


NO_NUL = pattern(r"^[^\x00]*$", "must not contain a NUL character")
"""PostgreSQL text cannot hold a NUL character: a pattern for every free-text input."""
NOT_BLANK = pattern(rf"^[^\x00]*[^{WHITESPACE}\x00][^\x00]*$", "must not be blank or contain a NUL character")

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=NOT_BLANK)]
Text = Annotated[str, msgspec.Meta(max_length=5000, pattern=NO_NUL)]
Email = Annotated[
    str,
    msgspec.Meta(
        max_length=254,
        pattern=pattern(
            rf"^[^@{WHITESPACE}\x00]+@[^@{WHITESPACE}\x00]+\.[^@{WHITESPACE}\x00]+$",
            "must be an email address, such as ada@example.com",
        ),
        description="An email address",
    ),
]
Password = Annotated[str, msgspec.Meta(min_length=8, max_length=128, pattern=NO_NUL)]
AwareDateTime = Annotated[datetime, msgspec.Meta(tz=True, description="An RFC 3339 date-time with its offset")]
"""A moment in a request body: without an offset it would be ambiguous, so it is refused."""
