"""Base Structs: responses are plain Structs; request bodies refuse unknown fields."""

from __future__ import annotations

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


NO_NUL = r"^[^\x00]*$"
"""PostgreSQL text cannot hold a NUL character: a pattern for every free-text input."""

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^\x00]*[^\s\x00][^\x00]*$")]
Text = Annotated[str, msgspec.Meta(max_length=5000, pattern=NO_NUL)]
Email = Annotated[
    str, msgspec.Meta(max_length=254, pattern=r"^[^@\s\x00]+@[^@\s\x00]+\.[^@\s\x00]+$", description="An email address")
]
Password = Annotated[str, msgspec.Meta(min_length=8, max_length=128, pattern=r"^[^\x00]*$")]
