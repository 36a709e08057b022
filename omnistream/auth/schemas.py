from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from omnistream.agents.schemas import Agent
from omnistream.kit.schema import Email, Input, Name, Password, Schema
from omnistream.tenants.schemas import Tenant
from omnistream.tenants.service import SLUG_PATTERN

Slug = Annotated[
    str,
    msgspec.Meta(min_length=1, max_length=63, pattern=SLUG_PATTERN, description="Lowercase letters, digits and dashes"),
]
TimeZone = Annotated[str, msgspec.Meta(max_length=64, description="An IANA time zone, e.g. Europe/Berlin")]


class LoginRequest(Input):
    email: Email
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    tenant: Slug | None = None
    """The organisation's slug; needed only when the email belongs to several organisations."""


class RegisterRequest(Input):
    organization_name: Name
    name: Name
    email: Email
    password: Password
    slug: Slug | None = None
    timezone: TimeZone = "UTC"


class Profile(Agent):
    permissions: list[str]
    tenant: Tenant
    auth_method: Literal["session", "api_key"]


class AuthSession(Schema):
    access_token: str
    token_type: Literal["bearer"]
    expires_at: datetime
    agent: Profile
    csrf_token: str
    """For browser clients signed in by the cookie: send it as `X-CSRF-Token` with every POST, PUT,
    PATCH and DELETE (also set as the `omnistream_csrf` cookie). Not needed with the Bearer token."""
