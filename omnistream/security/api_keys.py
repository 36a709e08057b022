"""API key format: `osk_<prefix>_<secret>`. Only the prefix and a SHA-256 of the key are stored.

A key carries 256 bits of randomness, so a fast hash is as safe as a slow one here and
keeps authentication to one indexed lookup per request.
"""

from __future__ import annotations

import hashlib
import secrets

from msgspec import Struct

KEY_SCHEME = "osk"


class NewKey(Struct, frozen=True):
    prefix: str
    secret: str
    hash: str


def hash_key(full_key: str) -> str:
    return hashlib.sha256(full_key.encode()).hexdigest()


def generate_key() -> NewKey:
    prefix = secrets.token_hex(6)
    full = f"{KEY_SCHEME}_{prefix}_{secrets.token_urlsafe(32)}"
    return NewKey(prefix=prefix, secret=full, hash=hash_key(full))


def split_key(full_key: str) -> str | None:
    """The prefix of a well-formed key, or None."""
    scheme, _, rest = full_key.partition("_")
    prefix, _, secret = rest.partition("_")
    if scheme != KEY_SCHEME or len(prefix) != 12 or not secret or len(full_key) > 200:
        return None
    return prefix
