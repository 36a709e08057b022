"""Where the workers may post: outbound HTTP to URLs that tenants configure (automation's
send_webhook, outgoing webhooks) must not reach into the network the workers run in.

A URL whose host is, or resolves to, a private, loopback, link-local or otherwise reserved
address is refused, unless `OMNISTREAM_WEBHOOKS_ALLOW_PRIVATE` allows it (tests, on-premise
receivers). A name is resolved again before every delivery: its DNS may have changed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit


class Refused(Exception):
    """A target the workers may not reach."""


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified
    )


async def check_target(url: str, *, allow_private: bool) -> None:
    """Refuse a URL whose host is, or resolves to, an address that is not public."""
    if allow_private:
        return
    host = urlsplit(url).hostname
    if not host:
        raise Refused("the URL has no host")
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise Refused(f"{host} does not resolve") from exc
    private = sorted({info[4][0] for info in infos if not _is_public(info[4][0])})
    if private:
        raise Refused(f"{host} resolves to an address that is not public ({', '.join(private)})")
