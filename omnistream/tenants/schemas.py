from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from omnistream.kit.schema import Schema


class Tenant(Schema):
    id: UUID
    name: str
    slug: str
    timezone: str
    status: Literal["active", "suspended"]
    created_at: datetime
    updated_at: datetime
