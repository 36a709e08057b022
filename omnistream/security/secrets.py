"""Secrets and tokens at rest: Fernet (AES-128-CBC + HMAC-SHA256) from `cryptography`.

`OMNISTREAM_ENCRYPTION_KEYS` holds one or more keys, comma-separated. The first encrypts; each
decrypts, so a key is rotated by putting a new one first, running `omnistream rotate-secrets`
(which encrypts every stored secret again with it) and then removing the old key.
"""

from __future__ import annotations

import base64
import functools
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class SecretBox:
    def __init__(self, keys: list[bytes]) -> None:
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    def seal(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode()

    def open(self, sealed: str) -> str:
        """The plain value; ValueError when no configured key opens it."""
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("a stored secret was sealed with a key that is no longer configured") from exc

    def reseal(self, sealed: str) -> str:
        """The same secret sealed with the first key (rotation)."""
        return self._fernet.rotate(sealed.encode()).decode()


def new_key() -> str:
    return Fernet.generate_key().decode()


def development_key(seed: str) -> str:
    """A key derived from another secret, for development and tests only (production must set keys)."""
    return base64.urlsafe_b64encode(hashlib.sha256(b"omnistream-secrets:" + seed.encode()).digest()).decode()


@functools.lru_cache(maxsize=8)
def secret_box(keys: str) -> SecretBox:
    """The box for a comma-separated key list; ValueError naming a key that is not a Fernet key."""
    parsed = []
    for position, key in enumerate((k.strip() for k in keys.split(",") if k.strip()), start=1):
        try:
            Fernet(key.encode())
        except ValueError as exc:
            raise ValueError(f"key {position} is not a Fernet key (32 url-safe base64-encoded bytes)") from exc
        parsed.append(key.encode())
    if not parsed:
        parsed.append(Fernet.generate_key())  # an empty list is checked for in production; this one is never used
    return SecretBox(parsed)


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()
