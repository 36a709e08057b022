"""The client's address, behind proxies the operator trusts (OMNISTREAM_TRUSTED_PROXIES).

A TLS-terminating proxy connects to the API itself, so the peer of every request is the proxy;
the client's address is in `X-Forwarded-For`, which each proxy extends with the address it was
connected from. Anyone can send that header, so it is read only when the peer is a trusted
proxy, and then from the right: the right-most address that is not itself a trusted proxy is
the client (whatever lies left of it was written by the client and proves nothing).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from typing import Any

from litestar.types import ASGIApp, Receive, Scope, Send

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

FORWARDED_FOR = b"x-forwarded-for"


def parse_networks(value: str) -> tuple[Network, ...]:
    """Addresses or CIDRs, separated by commas or spaces; raises ValueError naming a bad one."""
    networks = []
    for item in value.replace(",", " ").split():
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or CIDR network") from None
    return tuple(networks)


def parse_address(text: str) -> IPAddress | None:
    """An address as a peer or an `X-Forwarded-For` hop gives it (maybe with a port), or None."""
    text = text.strip()
    if text.startswith("["):  # [2001:db8::1]:443
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:  # 192.0.2.1:443
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: IPAddress, proxies: tuple[Network, ...]) -> bool:
    return any(address.version == network.version and address in network for network in proxies)


def client_address(peer: str | None, forwarded_for: Iterable[str], proxies: tuple[Network, ...]) -> str | None:
    """The client's address: the peer's, unless the peer is a trusted proxy; then the right-most
    `X-Forwarded-For` hop that is not a trusted proxy (or, if all are, the left-most)."""
    address = parse_address(peer) if peer else None
    if address is None or not _trusted(address, proxies):
        return peer
    hops = [hop for value in forwarded_for for hop in value.split(",")]
    for hop in reversed(hops):
        forwarded = parse_address(hop)
        if forwarded is None:
            break  # not an address: nothing further left can be believed either
        address = forwarded
        if not _trusted(address, proxies):
            break
    return str(address)


class ForwardedClientMiddleware:
    """Outermost ASGI middleware: replaces the scope's client with the one `client_address`
    finds, so that every later reader (throttles, rate limit, logs, sessions) sees the client."""

    def __init__(self, app: ASGIApp, proxies: tuple[Network, ...]) -> None:
        self.app = app
        self.proxies = proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and scope.get("client"):
            peer_host = scope["client"][0]
            forwarded = [value.decode("latin-1") for name, value in scope["headers"] if name == FORWARDED_FOR]
            host = client_address(peer_host, forwarded, self.proxies)
            if host != peer_host:
                scope["client"] = (host, 0)
        await self.app(scope, receive, send)


@functools.lru_cache(maxsize=4096)
def throttle_key(ip: str | None) -> str:
    """What the per-address limits count by: an IPv4 address, or an IPv6 address's /64 (one
    subscriber's network: counting single IPv6 addresses would let a client pick a new one per
    attempt). Clients without a usable address share one budget."""
    address = parse_address(ip) if ip else None
    if address is None:
        return "unknown"
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def rate_limit_identifier(request: Any) -> str:
    """The public rate limit's key for a request (Litestar's RateLimitConfig.identifier_for_request)."""
    return throttle_key(request.client.host if request.client else None)
