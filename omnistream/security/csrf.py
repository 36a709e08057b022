"""Cross-site request forgery: a write authenticated by the session cookie must show it was meant.

A browser sends the session cookie with any request to the API, including one that another
site's page makes (a form posting `text/plain`, say). So an unsafe request (POST, PUT, PATCH,
DELETE) authenticated by the cookie alone is accepted only with one of:

* the `X-CSRF-Token` header holding the session's CSRF token: an HMAC of the session id under
  the JWT secret, which sign-in, registration and `GET /api/auth/token` hand out in the
  `csrf_token` field and in the `omnistream_csrf` cookie (readable by the site's own scripts,
  never by another site's);
* `Sec-Fetch-Site: same-origin`, which browsers set and pages cannot: the request came from the
  API's own origin;
* from a browser too old to send `Sec-Fetch-Site`, an `Origin` equal to OMNISTREAM_PUBLIC_URL's.

Requests authenticated by an `Authorization` header or `X-API-Key` carry credentials that a
browser never adds on its own, and are not checked.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from litestar.connection import ASGIConnection

from omnistream.errors import Forbidden
from omnistream.security.principal import Actor

CSRF_COOKIE = "omnistream_csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def token_for(secret: str, session_id: UUID) -> str:
    digest = hmac.new(secret.encode(), b"omnistream-csrf:" + session_id.bytes, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def origin_of(url: str) -> str | None:
    """`scheme://host[:port]` of a URL, as browsers write it in `Origin`; None for no URL."""
    parts = urlsplit(url.strip())
    if not parts.scheme or not parts.netloc:
        return None
    scheme, host = parts.scheme.lower(), parts.netloc.lower().rpartition("@")[-1]
    default_port = {"https": ":443", "http": ":80"}.get(scheme)
    if default_port and host.endswith(default_port):
        host = host.removesuffix(default_port)  # browsers leave the default port out of Origin
    return f"{scheme}://{host}"


def check(connection: ASGIConnection[Any, Any, Any, Any], actor: Actor, secret: str, origin: str | None) -> None:
    """Refuse (403) an unsafe cookie-authenticated request that shows no sign of being meant."""
    given = connection.headers.get(CSRF_HEADER)
    expected = token_for(secret, actor.session_id) if actor.session_id is not None else None
    if given and expected and hmac.compare_digest(given.encode(), expected.encode()):
        return
    fetch_site = connection.headers.get("sec-fetch-site")
    if fetch_site is not None:
        if fetch_site == "same-origin":
            return
    elif origin is not None and connection.headers.get("origin") == origin:
        return
    raise Forbidden(
        "a request authenticated by the session cookie needs the session's CSRF token in the X-CSRF-Token "
        "header (the csrf_token of sign-in, or the omnistream_csrf cookie); or send the token as "
        "Authorization: Bearer instead"
    )
