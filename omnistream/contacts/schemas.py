from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec

from omnistream.kit.schema import NO_NUL, WHITESPACE, Email, Input, Schema, pattern

TAG_PATTERN = pattern(
    rf"^[^\x00,]*[^{WHITESPACE}\x00,][^\x00,]*$", "must not be blank or contain a comma or a NUL character"
)

ATTRIBUTE_KEY_PATTERN = pattern(r"^[A-Za-z0-9_.-]+$", "may hold only letters, digits and _ . -")

Channel = Literal["whatsapp", "messenger", "instagram", "email"]
Tag = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=50,
        pattern=TAG_PATTERN,
    ),
]
Tags = Annotated[list[Tag], msgspec.Meta(max_length=50)]
Phone = Annotated[
    str,
    msgspec.Meta(
        min_length=3,
        max_length=32,
        pattern=pattern(
            r"^\+?[ ()./-]*(?:[0-9][ ()./-]*){3,}$",
            "must be a phone number: digits (at least 3), optionally a leading + and separators ( ) . / - and spaces",
        ),
        description="Digits, optionally a leading + and separators ( ) . / - and spaces; at least 3 digits",
    ),
]
AttributeKey = Annotated[
    str,
    msgspec.Meta(min_length=1, max_length=100, pattern=ATTRIBUTE_KEY_PATTERN),
]
AttributeValue = Annotated[str, msgspec.Meta(max_length=2000, pattern=NO_NUL)] | int | float | bool | None


class ContactIdentity(Schema):
    channel: Channel
    external_id: str


class Contact(Schema):
    id: UUID
    name: str
    phone: str | None
    email: str | None
    tags: list[str]
    custom_attributes: dict[str, Any]
    opted_out: bool
    """The contact asked for no campaign messages: campaigns skip (and count) them."""
    opted_out_at: datetime | None
    identities: list[ContactIdentity]
    last_seen_at: datetime | None
    created_at: datetime
    updated_at: datetime


class ContactUpdate(Input):
    name: Annotated[str, msgspec.Meta(max_length=200, pattern=NO_NUL)] | msgspec.UnsetType = msgspec.UNSET
    phone: Phone | msgspec.UnsetType | None = msgspec.UNSET
    email: Email | msgspec.UnsetType | None = msgspec.UNSET
    tags: Tags | msgspec.UnsetType = msgspec.UNSET
    """Replaces the contact's tags (normalised: trimmed, lower-cased, de-duplicated)."""
    custom_attributes: (
        Annotated[dict[AttributeKey, AttributeValue], msgspec.Meta(max_length=100)] | msgspec.UnsetType
    ) = msgspec.UNSET
    """Merged into the existing attributes; a key set to null is removed."""
    opted_out: bool | msgspec.UnsetType = msgspec.UNSET
    """True when the contact asks for no campaign messages (campaigns skip them); false again when
    they consent anew."""


class ContactList(Schema):
    contacts: list[Contact]
    next_cursor: str | None
    total: int
