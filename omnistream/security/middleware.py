"""Authentication: a session JWT (Bearer header or HttpOnly cookie) or an `X-API-Key`."""

from __future__ import annotations

import functools
import ipaddress
from typing import Any
from uuid import UUID

import msgspec
import structlog
from asgi_correlation_id import correlation_id
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.middleware.authentication import AuthenticationResult
from litestar.security.jwt import JWTCookieAuth, JWTCookieAuthenticationMiddleware, Token

from omnistream.auth import sessions
from omnistream.config import Settings
from omnistream.errors import Forbidden
from omnistream.security import csrf
from omnistream.security.principal import Actor
from omnistream.security.tokens import ALGORITHM, REQUIRED_CLAIMS

AUTH_COOKIE = "omnistream_session"
API_KEY_HEADER = "x-api-key"


def client_ip(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """The peer's address, or None when the server reports something that is not an IP."""
    return _as_ip(connection.client.host) if connection.client else None


@functools.lru_cache(maxsize=4096)
def _as_ip(host: str) -> str | None:
    # Parsed once per address: on every authenticated request it cost as much as the guard.
    try:
        return str(ipaddress.ip_address(host)) if host else None
    except ValueError:
        return None


def request_id() -> str | None:
    return correlation_id.get()


async def actor_from_token(token: Token, connection: ASGIConnection[Any, Any, Any, Any]) -> Actor | None:
    try:
        session_id = UUID(str(token.jti))
        user_id = UUID(token.sub)
        tenant_id = UUID(str(token.extras.get("tid")))
    except ValueError:
        return None
    return await sessions.actor_for_session(
        connection.app.state.db, session_id, user_id, tenant_id, ip=client_ip(connection), request_id=request_id()
    )


class AuthenticationMiddleware(JWTCookieAuthenticationMiddleware):
    """Litestar's JWT cookie/header authentication, with API keys tried first."""

    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        try:
            return await self._authenticate(connection)
        except NotAuthorizedException as refused:
            # The access log sits inside authentication and never sees a refused request. A fresh
            # logger each time (refusals are rare) follows the logging configuration of the moment.
            structlog.get_logger(__name__).info(
                "authentication refused",
                method=connection.scope["method"],
                path=connection.url.path,
                client=client_ip(connection),
                reason=refused.detail,
            )
            raise

    async def _authenticate(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        api_key = connection.headers.get(API_KEY_HEADER)
        if api_key:
            actor = await sessions.actor_for_api_key(
                connection.app.state.db, api_key, ip=client_ip(connection), request_id=request_id()
            )
            if actor is None:
                raise NotAuthorizedException("invalid, expired or revoked API key")
            return AuthenticationResult(user=actor, auth=None)
        result = await super().authenticate_request(connection)
        if connection.scope["method"] not in csrf.SAFE_METHODS and self._by_cookie(connection):
            try:
                csrf.check(connection, result.user, self.token_secret, self.trusted_origin)
            except Forbidden as refused:
                structlog.get_logger(__name__).info(
                    "cross-site request refused",
                    method=connection.scope["method"],
                    path=connection.url.path,
                    client=client_ip(connection),
                    origin=connection.headers.get("origin"),
                    sec_fetch_site=connection.headers.get("sec-fetch-site"),
                )
                raise refused from None
        return result

    trusted_origin: str | None = None
    """The origin of OMNISTREAM_PUBLIC_URL, whose `Origin` passes the CSRF check (`jwt_auth` sets it)."""

    def _by_cookie(self, connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
        # As Litestar's JWT middleware chooses: the header's token when it has one, else the cookie.
        return not connection.headers.get(self.auth_header, "").partition(" ")[-1]

    async def authenticate_token(
        self, encoded_token: str, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        # A token seen moments ago was verified then: skip decoding it again (the cache
        # forgets it on any change to its tenant's people, and never keeps it past `exp`).
        actor = sessions.recent_token_actor(encoded_token)
        if actor is not None:
            return AuthenticationResult(
                user=msgspec.structs.replace(actor, ip=client_ip(connection), request_id=request_id()), auth=None
            )
        looked_up_at = sessions.generation()
        result = await super().authenticate_token(encoded_token, connection)
        sessions.remember_token_actor(encoded_token, result.user, result.auth.exp, looked_up_at)
        return result


def jwt_auth(settings: Settings) -> JWTCookieAuth[Actor, Token]:
    class Authentication(AuthenticationMiddleware):
        trusted_origin = csrf.origin_of(settings.public_url)

    return JWTCookieAuth[Actor, Token](
        token_secret=settings.jwt_secret,
        algorithm=ALGORITHM,
        retrieve_user_handler=actor_from_token,
        accepted_audiences=[settings.jwt_audience],
        require_claims=list(REQUIRED_CLAIMS),
        key=AUTH_COOKIE,
        secure=settings.cookie_secure,
        samesite="lax",
        authentication_middleware_class=Authentication,
        exclude=["^/schema", "^/metrics"],
        description="A session JWT from /api/auth/login, as a Bearer token or the HttpOnly cookie.",
    )


def provide_actor(request: Request[Any, Any, Any]) -> Actor:
    return request.user
