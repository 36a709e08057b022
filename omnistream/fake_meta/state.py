"""What the stand-in remembers: requests received, failures to answer with, its configuration."""

from __future__ import annotations

import itertools
import os
import time
from typing import Any

import msgspec

# Meta's errors as the Graph API answers them, by the names tests use.
ERRORS: dict[str, tuple[int, dict[str, Any]]] = {
    "rate_limit": (
        429,
        {
            "message": "(#130429) Rate limit hit",
            "type": "OAuthException",
            "code": 130429,
            "error_data": {
                "messaging_product": "whatsapp",
                "details": "Cloud API message throughput has been reached.",
            },
        },
    ),
    "reengagement": (
        400,
        {
            "message": "(#131047) Re-engagement message",
            "type": "OAuthException",
            "code": 131047,
            "error_data": {
                "messaging_product": "whatsapp",
                "details": "Message failed to send because more than 24 hours have passed since the customer "
                "last replied to this number.",
            },
        },
    ),
    "invalid_parameter": (
        400,
        {
            "message": "(#100) Invalid parameter",
            "type": "OAuthException",
            "code": 100,
            "error_data": {"messaging_product": "whatsapp", "details": "Parameter value is not valid"},
        },
    ),
    "expired_token": (
        401,
        {
            "message": "Error validating access token: Session has expired.",
            "type": "OAuthException",
            "code": 190,
            "error_subcode": 463,
        },
    ),
    "server_error": (
        500,
        {"message": "An unknown error has occurred.", "type": "OAuthException", "code": 1, "is_transient": True},
    ),
    "unavailable": (
        503,
        {"message": "(#2) Service temporarily unavailable", "type": "OAuthException", "code": 2, "is_transient": True},
    ),
}


class Failure(msgspec.Struct, kw_only=True):
    error: str
    """A name of ERRORS."""
    path_contains: str = ""
    method: str = ""
    times: int = 1
    retry_after: int | None = None
    """Seconds for a Retry-After header."""
    delay_seconds: float = 0.0
    """Wait this long before answering (a timeout, to a client with a shorter one)."""


class Config(msgspec.Struct, kw_only=True):
    webhook_url: str = msgspec.field(default_factory=lambda: os.environ.get("FAKE_META_WEBHOOK_URL", ""))
    """Where status webhooks go after a WhatsApp send (empty: none are sent)."""
    app_secret: str = msgspec.field(default_factory=lambda: os.environ.get("FAKE_META_APP_SECRET", ""))
    """Signs the webhooks (X-Hub-Signature-256)."""
    statuses: list[str] = msgspec.field(default_factory=lambda: ["sent", "delivered", "read"])
    status_delay_seconds: float = 0.2


class Recorded(msgspec.Struct):
    id: int
    at: float
    method: str
    path: str
    query: dict[str, str]
    authorization: str
    body: Any


class State:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests: list[Recorded] = []
        self.failures: list[Failure] = []
        self.config = Config()
        # Ids go on from the clock, not from 1: a restarted stand-in must not repeat the message ids
        # the API already stored (it would drop the new messages as duplicates).
        self._ids = itertools.count(time.time_ns() // 1_000_000)
        self.media: dict[str, tuple[bytes, str]] = {}
        self.templates: dict[str, list[dict[str, Any]]] = {}
        self.menus: dict[str, Any] = {}

    def next_id(self) -> int:
        return next(self._ids)

    def record(self, method: str, path: str, query: dict[str, str], authorization: str, body: Any) -> None:
        self.requests.append(Recorded(self.next_id(), time.time(), method, path, query, authorization, body))
        del self.requests[:-5000]

    def failure_for(self, method: str, path: str) -> Failure | None:
        for failure in self.failures:
            if path_matches(failure, method, path):
                failure.times -= 1
                if failure.times <= 0:
                    self.failures.remove(failure)
                return failure
        return None


def path_matches(failure: Failure, method: str, path: str) -> bool:
    return failure.path_contains in path and (not failure.method or failure.method.upper() == method)


STATE = State()
