"""Inbound webhooks: verify a delivery, route each item to the tenant whose account it names,
queue what is routed (see `inbox`), and answer. Nothing is stored before the signature is
verified, and an item for an account no tenant has connected is logged and dropped.

Cross-tenant safety: Meta signs a delivery with the secret of the app that subscribed the
accounts. An item is accepted only when the secret that verified the delivery is the one of the
tenant owning the item's account, so a tenant who signs with its own app secret can never put
items into another tenant's inbox by naming that tenant's phone number or page.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import weakref
from collections import defaultdict
from typing import Any
from uuid import UUID

import msgspec
import structlog
from redis.asyncio import Redis

from omnistream.channels.parsing import Parsed, ParsedAccountEvent, ParsedMessage, ParsedStatus, Skipped, messenger
from omnistream.channels.parsing import whatsapp as whatsapp_parser
from omnistream.config import Settings
from omnistream.db import Database
from omnistream.errors import AppError, BadRequest, Unauthorized
from omnistream.integrations import service as integrations
from omnistream.integrations.service import AccountRoute
from omnistream.webhooks import inbox
from omnistream.webhooks.inbox import QueuedDelivery, RoutedAccountEvent, RoutedMessage, RoutedStatus
from omnistream.webhooks.schemas import WebhookReceipt

log = structlog.get_logger(__name__)

SIGNATURE_PREFIX = "sha256="
# Which channels' verify tokens each verification endpoint accepts.
VERIFY_CHANNELS = {
    "meta": ["whatsapp", "instagram", "messenger"],
    "messenger": ["messenger"],
    "instagram": ["instagram"],
}


class Forbidden(AppError):
    status_code = 403
    title = "Forbidden"


async def verify_subscription(
    db: Database, settings: Settings, endpoint: str, mode: str | None, token: str | None, challenge: str | None
) -> str:
    """Meta's subscription check: the challenge back, only for `subscribe` with a known verify token."""
    if mode != "subscribe" or not token or challenge is None:
        raise Forbidden("hub.mode must be subscribe, with hub.verify_token and hub.challenge")
    if not await integrations.verify_token_known(db, settings, VERIFY_CHANNELS[endpoint], token):
        raise Forbidden("the verify token is not one configured for this channel")
    return challenge


def signature_of(header: str | None, name: str = "X-Hub-Signature-256") -> bytes:
    """The digest a `sha256=<hex>` signature header names; 401 when it is missing or not one."""
    if not header or not header.startswith(SIGNATURE_PREFIX):
        raise Unauthorized(f"{name} is missing or not of the form sha256=<hex digest>")
    try:
        return bytes.fromhex(header[len(SIGNATURE_PREFIX) :])
    except ValueError as exc:
        raise Unauthorized(f"{name} is not a hex digest") from exc


def signed_with(secret: str, body: bytes, signature: bytes) -> bool:
    return hmac.compare_digest(hmac.new(secret.encode(), body, hashlib.sha256).digest(), signature)


def decode_json(body: bytes) -> Any:
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from exc


def parse_meta(body: Any, endpoint: str) -> list[Parsed]:
    """The items of a Meta delivery, by its `object` (every endpoint accepts every kind: Meta's
    app dashboard lets one callback URL serve all)."""
    kind = body.get("object") if isinstance(body, dict) else None
    if kind == "whatsapp_business_account":
        return whatsapp_parser.parse(body)
    if kind in ("page", "instagram"):
        return messenger.parse(body)
    raise BadRequest(f"object {kind!r} is not a webhook of WhatsApp, Messenger or Instagram")


async def receive_meta(
    db: Database, redis: Redis, settings: Settings, endpoint: str, raw: bytes, signature_header: str | None
) -> WebhookReceipt:
    signature = signature_of(signature_header)
    items = parse_meta(decode_json(raw), endpoint)
    routes = await _routes(db, settings, items)
    if not routes:
        _log_unrouted(items, routes)
        return WebhookReceipt(received=len(items), queued=0, ignored=len(items))
    secret = next(
        (s for s in {r.app_secret for r in routes.values() if r.app_secret} if signed_with(s, raw, signature)), None
    )
    if secret is None:
        raise Unauthorized("the X-Hub-Signature-256 does not match the body signed with the app secret")
    accepted = {key: route for key, route in routes.items() if route.app_secret == secret and route.active}
    deliveries = _deliveries(items, accepted)
    if deliveries:
        await inbox.put(redis, settings.redis_prefix, deliveries)
    _log_unrouted(items, accepted)
    queued = sum(d.size for d in deliveries)
    return WebhookReceipt(received=len(items), queued=queued, ignored=len(items) - queued)


def _account_key(item: Parsed) -> tuple[str, str] | None:
    if isinstance(item, ParsedMessage | ParsedStatus | ParsedAccountEvent):
        return item.channel, item.account_ref
    return None


class RouteCache:
    """The routes of accounts seen in the last seconds, so that a burst for one number costs one
    lookup, not one per delivery. Only found routes are kept (an account connected a moment ago
    is found on its first delivery), and the drain checks each account again before it stores
    anything, so a route kept past a disconnection never puts a message where it no longer belongs."""

    TTL_SECONDS = 5.0

    def __init__(self) -> None:
        self._routes: dict[tuple[str, str], tuple[float, AccountRoute]] = {}

    def get(self, key: tuple[str, str], now: float) -> AccountRoute | None:
        held = self._routes.get(key)
        return held[1] if held is not None and held[0] > now else None

    def put(self, key: tuple[str, str], route: AccountRoute, now: float) -> None:
        if len(self._routes) > 100_000:
            self._routes = {k: v for k, v in self._routes.items() if v[0] > now}
        self._routes[key] = (now + self.TTL_SECONDS, route)


# One cache per database (pool): the routes it holds are that database's.
_caches: weakref.WeakKeyDictionary[Database, RouteCache] = weakref.WeakKeyDictionary()


async def _routes(db: Database, settings: Settings, items: list[Parsed]) -> dict[tuple[str, str], AccountRoute]:
    cache = _caches.get(db) or _caches.setdefault(db, RouteCache())
    now = time.monotonic()
    routes: dict[tuple[str, str], AccountRoute] = {}
    wanted: dict[str, set[str]] = defaultdict(set)
    for item in items:
        if (key := _account_key(item)) is not None and key not in routes:
            if (cached := cache.get(key, now)) is not None:
                routes[key] = cached
            else:
                wanted[key[0]].add(key[1])
    for channel, refs in wanted.items():
        for route in await integrations.route_accounts(db, settings, channel, sorted(refs)):
            for ref in refs & {route.external_id, route.business_account_id}:
                # A business account's news (templates, quality) concerns each of its numbers' tenants alike.
                if (channel, ref) not in routes:
                    routes[(channel, ref)] = route
                    cache.put((channel, ref), route, now)
    return routes


def _deliveries(items: list[Parsed], routes: dict[tuple[str, str], AccountRoute]) -> list[QueuedDelivery]:
    grouped: dict[UUID, dict[str, list[Any]]] = defaultdict(lambda: {"messages": [], "statuses": [], "events": []})
    for item in items:
        key = _account_key(item)
        route = routes.get(key) if key is not None else None
        if route is None:
            continue
        group = grouped[route.tenant_id]
        if isinstance(item, ParsedMessage):
            group["messages"].append(RoutedMessage(route.account_id, item))
        elif isinstance(item, ParsedStatus):
            group["statuses"].append(RoutedStatus(route.account_id, item))
        elif isinstance(item, ParsedAccountEvent):
            group["events"].append(RoutedAccountEvent(route.account_id, item))
    now = time.time()
    return [
        QueuedDelivery(
            tenant_id=tenant_id,
            received_at=now,
            messages=group["messages"],
            statuses=group["statuses"],
            account_events=group["events"],
        )
        for tenant_id, group in grouped.items()
    ]


def _log_unrouted(items: list[Parsed], routes: dict[tuple[str, str], AccountRoute]) -> None:
    for item in items:
        if isinstance(item, Skipped):
            log.info("webhook item skipped", reason=item.reason)
        elif (key := _account_key(item)) is not None and key not in routes:
            log.warning("webhook item for an account no organisation has connected", channel=key[0], account=key[1])
