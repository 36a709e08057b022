"""Accounts: OAuth code and token exchange, pages, app subscriptions, phone numbers, profiles."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, delete, get, post

from omnistream.fake_meta.messaging import media_info
from omnistream.fake_meta.state import STATE

# What the stand-in's Meta knows about: codes it accepts give these tokens and assets.
GOOD_CODE_PREFIX = "good-"
WABA_ID = "102290129340398"
PHONE_NUMBER_ID = "106540352242922"
PAGE_ID = "101011101011101"
INSTAGRAM_ID = "17841400000000001"


def _error(message: str, code: int, status: int = 400, subcode: int | None = None) -> Response[Any]:
    error: dict[str, Any] = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": f"A{STATE.next_id():010d}",
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    return Response({"error": error}, status_code=status)


@get("/{version:str}/oauth/access_token", status_code=200)
async def access_token(
    version: str,
    client_id: str = "",
    client_secret: str = "",
    code: str = "",
    grant_type: str = "",
    fb_exchange_token: str = "",
) -> Response[Any]:
    if not client_id or not client_secret:
        return _error("Missing client_id or client_secret", 101)
    if grant_type == "fb_exchange_token":
        if not fb_exchange_token.startswith("EAA"):
            return _error("Invalid OAuth access token.", 190)
        return Response(
            {"access_token": f"EAAlong{fb_exchange_token[3:]}", "token_type": "bearer", "expires_in": 5183944}
        )
    if not code.startswith(GOOD_CODE_PREFIX):
        return _error("Invalid verification code format.", 100, subcode=36008)
    return Response(
        {"access_token": f"EAA{code[len(GOOD_CODE_PREFIX) :]}", "token_type": "bearer", "expires_in": 5183944}
    )


@get("/{version:str}/debug_token", status_code=200)
async def debug_token(version: str, input_token: str = "") -> Response[Any]:
    if not input_token.startswith("EAA"):
        return _error("Invalid OAuth access token.", 190)
    return Response(
        {
            "data": {
                "app_id": "000000000000001",
                "type": "SYSTEM_USER",
                "is_valid": True,
                "scopes": ["whatsapp_business_management", "whatsapp_business_messaging"],
                "granular_scopes": [
                    {"scope": "whatsapp_business_management", "target_ids": [WABA_ID]},
                    {"scope": "whatsapp_business_messaging", "target_ids": [WABA_ID]},
                ],
            }
        }
    )


@get("/{version:str}/{waba_id:str}/phone_numbers", status_code=200)
async def phone_numbers(version: str, waba_id: str) -> Response[Any]:
    return Response(
        {
            "data": [
                {
                    "verified_name": "Stand-in Shop",
                    "display_phone_number": "+1 555-010-0000",
                    "id": PHONE_NUMBER_ID,
                    "quality_rating": "GREEN",
                }
            ],
            "paging": {"cursors": {"before": "QVFI", "after": "QVFI"}},
        }
    )


@post("/{version:str}/{phone_number_id:str}/register", status_code=200)
async def register(version: str, phone_number_id: str, request: Request[Any, Any, Any]) -> Response[Any]:
    body = msgspec.json.decode(await request.body() or b"{}")
    if body.get("messaging_product") != "whatsapp" or not str(body.get("pin", "")).isdigit():
        return _error("(#100) The parameter pin is required.", 100)
    return Response({"success": True})


@post("/{version:str}/{node_id:str}/subscribed_apps", status_code=200)
async def subscribe_app(
    version: str, node_id: str, request: Request[Any, Any, Any], subscribed_fields: str = ""
) -> Response[Any]:
    if node_id == PAGE_ID:
        # A page is subscribed with its own page token, naming the webhook fields.
        if not _token(request).startswith("EAApage"):
            return _error("(#210) A page access token is required to request this resource.", 210)
        if not subscribed_fields:
            return _error("(#100) The parameter subscribed_fields is required.", 100)
    return Response({"success": True})


@delete("/{version:str}/{node_id:str}/subscribed_apps", status_code=200)
async def unsubscribe_app(version: str, node_id: str) -> Response[Any]:
    return Response({"success": True})


@get("/{version:str}/me/accounts", status_code=200)
async def pages(version: str, request: Request[Any, Any, Any]) -> Response[Any]:
    token = request.headers.get("authorization", "").removeprefix("Bearer ") or request.query_params.get(
        "access_token", ""
    )
    if not token.startswith("EAA"):
        return _error("Invalid OAuth access token.", 190)
    return Response(
        {
            "data": [
                {
                    "access_token": f"EAApage{PAGE_ID}",
                    "category": "Shopping & retail",
                    "name": "Stand-in Page",
                    "id": PAGE_ID,
                    "tasks": ["ANALYZE", "ADVERTISE", "MESSAGING", "MODERATE", "CREATE_CONTENT", "MANAGE"],
                    "instagram_business_account": {"id": INSTAGRAM_ID, "username": "standin.shop"},
                }
            ],
            "paging": {"cursors": {"before": "QVFI", "after": "QVFI"}},
        }
    )


@get("/{version:str}/{node_id:str}", status_code=200)
async def node(version: str, node_id: str, request: Request[Any, Any, Any], fields: str = "") -> Response[Any]:
    """A media object's download URL, a phone number's health, or an Instagram account's profile."""
    if node_id in STATE.media:
        return media_info(node_id, request)
    if node_id == "me" or node_id == INSTAGRAM_ID:
        return Response(
            {"id": INSTAGRAM_ID, "user_id": INSTAGRAM_ID, "username": "standin.shop", "name": "Stand-in Shop"}
        )
    return Response(
        {
            "id": node_id,
            "verified_name": "Stand-in Shop",
            "display_phone_number": "+1 555-010-0000",
            "quality_rating": "GREEN",
            "messaging_limit_tier": "TIER_1K",
            "name_status": "APPROVED",
            "code_verification_status": "VERIFIED",
            "platform_type": "CLOUD_API",
            "throughput": {"level": "STANDARD"},
            "status": "CONNECTED",
        }
    )


@get("/{version:str}/me/messenger_profile", status_code=200)
async def get_profile(version: str, request: Request[Any, Any, Any], fields: str = "") -> Response[Any]:
    token = _token(request)
    menu = STATE.menus.get(token)
    return Response({"data": [] if menu is None else [{"persistent_menu": menu}]})


@post("/{version:str}/me/messenger_profile", status_code=200)
async def set_profile(version: str, request: Request[Any, Any, Any]) -> Response[Any]:
    body = msgspec.json.decode(await request.body() or b"{}")
    if not isinstance(body.get("persistent_menu"), list):
        return _error("(#100) param persistent_menu must be an array.", 100)
    STATE.menus[_token(request)] = body["persistent_menu"]
    return Response({"result": "success"})


@delete("/{version:str}/me/messenger_profile", status_code=200)
async def delete_profile(version: str, request: Request[Any, Any, Any]) -> Response[Any]:
    STATE.menus.pop(_token(request), None)
    return Response({"result": "success"})


def _token(request: Request[Any, Any, Any]) -> str:
    return request.headers.get("authorization", "").removeprefix("Bearer ") or request.query_params.get(
        "access_token", ""
    )


ROUTES = [
    access_token,
    debug_token,
    phone_numbers,
    register,
    subscribe_app,
    unsubscribe_app,
    pages,
    node,
    get_profile,
    set_profile,
    delete_profile,
]
