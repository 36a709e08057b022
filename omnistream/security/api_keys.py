"""API key format: `osk_<tenant>_<prefix>_<secret>`. Only the prefix and a SHA-256 of the key are stored.

The key names its tenant (the tenant id as 32 hex digits), so authenticating it is one lookup
within that tenant, which stays one node's work when tenants are spread over several. A key
carries 256 bits of randomness, so a fast hash is as safe as a slow one here and keeps
authentication to one indexed lookup per request.
"""

from __future__ import annotations

import hashlib
import secrets
from uuid import UUID

from msgspec import Struct

KEY_SCHEME = "osk"
PREFIX_LENGTH = 12
MAX_KEY_LENGTH = 200


class NewKey(Struct, frozen=True):
    prefix: str
    secret: str
    hash: str


class KeyName(Struct, frozen=True):
    """What a presented key says of itself: its tenant and its prefix."""

    tenant_id: UUID
    prefix: str


def hash_key(full_key: str) -> str:
    return hashlib.sha256(full_key.encode()).hexdigest()


def generate_key(tenant_id: UUID) -> NewKey:
    prefix = secrets.token_hex(PREFIX_LENGTH // 2)
    full = f"{KEY_SCHEME}_{tenant_id.hex}_{prefix}_{secrets.token_urlsafe(32)}"
    return NewKey(prefix=prefix, secret=full, hash=hash_key(full))


def split_key(full_key: str) -> KeyName | None:
    """The tenant and prefix of a well-formed key, or None."""
    if len(full_key) > MAX_KEY_LENGTH:
        return None
    parts = full_key.split("_", 3)
    if len(parts) != 4:
        return None
    scheme, tenant, prefix, secret = parts
    if scheme != KEY_SCHEME or len(tenant) != 32 or len(prefix) != PREFIX_LENGTH or not secret:
        return None
    try:
        return KeyName(tenant_id=UUID(hex=tenant), prefix=prefix)
    except ValueError:
        return None
