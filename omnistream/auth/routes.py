from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.params import JSONBody

from omnistream.auth import service
from omnistream.auth.schemas import AuthSession, LoginRequest, Profile, RegisterRequest
from omnistream.config import Settings
from omnistream.kit.deps import DB, AppSettings, CurrentActor, Throttle
from omnistream.kit.openapi import ERRORS
from omnistream.kit.schema import Message
from omnistream.security.csrf import CSRF_COOKIE
from omnistream.security.guards import PUBLIC, PUBLIC_RATE_LIMITED, access
from omnistream.security.middleware import AUTH_COOKIE, client_ip, request_id

SIGNED_IN = access("agent")


def _with_cookie(session: AuthSession, settings: Settings, status_code: int) -> Response[AuthSession]:
    cookie = Cookie(
        key=AUTH_COOKIE,
        value=f"Bearer {session.access_token}",
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
        path="/",
        max_age=settings.jwt_ttl_seconds,
    )
    # Readable by the site's own scripts (not HttpOnly), which echo it in X-CSRF-Token.
    csrf_cookie = Cookie(
        key=CSRF_COOKIE,
        value=session.csrf_token,
        httponly=False,
        samesite="lax",
        secure=settings.cookie_secure,
        path="/",
        max_age=settings.jwt_ttl_seconds,
    )
    return Response(session, status_code=status_code, cookies=[cookie, csrf_cookie])


class AuthController(Controller):
    path = "/api/auth"
    tags = ["Auth"]

    @post(
        "/register",
        operation_id="register",
        summary="Register a new tenant organization",
        opt=PUBLIC_RATE_LIMITED,
        status_code=201,
        description="Creates the organisation, its built-in roles and its first admin, and signs them in.",
    )
    async def register(
        self, request: Request[Any, Any, Any], db: DB, settings: AppSettings, data: JSONBody[RegisterRequest]
    ) -> Response[AuthSession]:
        session = await service.register(
            db,
            settings,
            data,
            ip=client_ip(request),
            user_agent=request.headers.get("user-agent"),
            request_id=request_id(),
        )
        return _with_cookie(session, settings, 201)

    @post(
        "/login",
        operation_id="login",
        summary="Login with email and password",
        opt={**PUBLIC, ERRORS: (401, 429)},
        status_code=200,
        description="Returns a JWT and sets it as an HttpOnly cookie. Repeated failures from one client "
        "address, or for one email from one address, are refused with 429 and Retry-After; many failures for "
        "one email from everywhere slow its sign-ins down.",
    )
    async def login(
        self,
        request: Request[Any, Any, Any],
        db: DB,
        settings: AppSettings,
        throttle: Throttle,
        data: JSONBody[LoginRequest],
    ) -> Response[AuthSession]:
        session = await service.login(
            db,
            settings,
            throttle,
            data,
            ip=client_ip(request),
            user_agent=request.headers.get("user-agent"),
            request_id=request_id(),
        )
        return _with_cookie(session, settings, 200)

    @get("/me", operation_id="me", summary="Get current agent profile", opt=SIGNED_IN)
    async def me(self, db: DB, actor: CurrentActor) -> Profile:
        return await service.me(db, actor)

    @post("/logout", operation_id="logout", summary="Logout (clears cookie)", opt=SIGNED_IN, status_code=200)
    async def logout(self, db: DB, actor: CurrentActor) -> Response[Message]:
        await service.logout(db, actor)
        response = Response(Message(message="signed out"))
        response.delete_cookie(AUTH_COOKIE, path="/")
        response.delete_cookie(CSRF_COOKIE, path="/")
        return response

    @get("/token", operation_id="refreshToken", summary="Issue a fresh JWT for the current session", opt=SIGNED_IN)
    async def token(self, db: DB, actor: CurrentActor, settings: AppSettings) -> Response[AuthSession]:
        session = await service.refresh(db, settings, actor)
        return _with_cookie(session, settings, 200)


CONTROLLERS = [AuthController]
