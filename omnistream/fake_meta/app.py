"""The stand-in's application: Graph routes of each kind, with recording and failures around them."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from litestar import Litestar, Request, Response, get, post
from litestar.types import ASGIApp, Receive, Scope, Send

from omnistream.fake_meta import accounts, messaging, templates
from omnistream.fake_meta.state import ERRORS, STATE, Config, Failure

CONTROL = "/_stand-in"


def graph_error(name: str, retry_after: int | None = None) -> Response[Any]:
    status, error = ERRORS[name]
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    body = {"error": {**error, "fbtrace_id": f"A{STATE.next_id():010d}"}}
    return Response(body, status_code=status, headers=headers)


def recording(app: ASGIApp) -> ASGIApp:
    """Record each Graph request, and answer it with a failure when one was asked for."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CONTROL):
            await app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        raw = b"".join(chunks)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        try:
            body: Any = msgspec.json.decode(raw) if raw and "json" in headers.get("content-type", "") else None
        except msgspec.DecodeError:
            body = raw.decode(errors="replace")
        query = dict(
            pair.split("=", 1) if "=" in pair else (pair, "")
            for pair in scope["query_string"].decode().split("&")
            if pair
        )
        STATE.record(scope["method"], scope["path"], query, headers.get("authorization", ""), body)
        failure = STATE.failure_for(scope["method"], scope["path"])
        if failure is not None:
            if failure.delay_seconds:
                await asyncio.sleep(failure.delay_seconds)
            await graph_error(failure.error, failure.retry_after).to_asgi_response(app=None, request=None)(  # type: ignore[arg-type]
                scope, receive, send
            )
            return
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}

        await app(scope, replay, send)

    return middleware


@get(f"{CONTROL}/requests", sync_to_thread=False)
def requests(path_contains: str = "", method: str = "") -> list[dict[str, Any]]:
    return [
        msgspec.to_builtins(r)
        for r in STATE.requests
        if path_contains in r.path and (not method or r.method == method.upper())
    ]


@post(f"{CONTROL}/failures", sync_to_thread=False, status_code=200)
def add_failure(data: Failure) -> dict[str, int]:
    if data.error not in ERRORS:
        raise ValueError(f"unknown error {data.error}")
    STATE.failures.append(data)
    return {"failures": len(STATE.failures)}


@post(f"{CONTROL}/config", sync_to_thread=False, status_code=200)
def configure(data: Config) -> Config:
    STATE.config = data
    return data


@post(f"{CONTROL}/reset", sync_to_thread=False, status_code=200)
def reset() -> dict[str, bool]:
    STATE.reset()
    return {"reset": True}


@post(f"{CONTROL}/media", status_code=201)
async def add_media(request: Request[Any, Any, Any], mime_type: str = "image/jpeg") -> dict[str, str]:
    """Hold bytes as an inbound media object: the id a webhook names, downloadable through the Graph API."""
    media_id = str(10**15 + STATE.next_id())
    STATE.media[media_id] = (await request.body(), mime_type)
    return {"id": media_id}


app = Litestar(
    route_handlers=[
        requests,
        add_failure,
        configure,
        reset,
        add_media,
        *messaging.ROUTES,
        *accounts.ROUTES,
        *templates.ROUTES,
    ],
    middleware=[recording],
    openapi_config=None,
)
