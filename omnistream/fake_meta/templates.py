"""WhatsApp message templates of a business account: list (paged by cursors) and create."""

from __future__ import annotations

import base64
from typing import Any

import msgspec
from litestar import Request, Response, get, post

from omnistream.fake_meta.state import STATE


@get("/{version:str}/{waba_id:str}/message_templates", status_code=200)
async def list_templates(
    version: str, waba_id: str, request: Request[Any, Any, Any], limit: int = 25, after: str = ""
) -> Response[Any]:
    templates = STATE.templates.get(waba_id, [])
    start = int(base64.b64decode(after).decode()) if after else 0
    page = templates[start : start + limit]
    body: dict[str, Any] = {"data": page}
    if page:
        body["paging"] = {
            "cursors": {
                "before": base64.b64encode(str(start).encode()).decode(),
                "after": base64.b64encode(str(start + len(page)).encode()).decode(),
            }
        }
        if start + len(page) < len(templates):
            base = str(request.base_url).rstrip("/")
            after_cursor = body["paging"]["cursors"]["after"]
            body["paging"]["next"] = f"{base}/{version}/{waba_id}/message_templates?limit={limit}&after={after_cursor}"
    return Response(body)


@post("/{version:str}/{waba_id:str}/message_templates", status_code=200)
async def create_template(version: str, waba_id: str, request: Request[Any, Any, Any]) -> Response[Any]:
    body = msgspec.json.decode(await request.body())
    if not isinstance(body, dict) or not body.get("name") or not body.get("language") or not body.get("category"):
        return Response(
            {
                "error": {
                    "message": "(#100) Invalid parameter",
                    "type": "OAuthException",
                    "code": 100,
                    "error_user_msg": "name, language and category are required",
                }
            },
            status_code=400,
        )
    template_id = str(2 * 10**15 + STATE.next_id())
    STATE.templates.setdefault(waba_id, []).append(
        {
            "name": body["name"],
            "language": body["language"],
            "category": body["category"],
            "components": body.get("components", []),
            "status": "PENDING",
            "id": template_id,
        }
    )
    return Response({"id": template_id, "status": "PENDING", "category": body["category"]})


@post("/_stand-in/templates/{waba_id:str}", status_code=201)
async def put_templates(waba_id: str, data: list[dict[str, Any]]) -> dict[str, int]:
    """Set the templates Meta holds for a business account (as if approved or rejected there)."""
    STATE.templates[waba_id] = data
    return {"templates": len(data)}


@post("/_stand-in/templates/{waba_id:str}/approve", status_code=200)
async def approve_templates(waba_id: str) -> dict[str, int]:
    """Approve every template of the business account, as Meta's review would (a sync then reads them)."""
    templates = STATE.templates.get(waba_id, [])
    for template in templates:
        template["status"] = "APPROVED"
    return {"approved": len(templates)}


ROUTES = [list_templates, create_template, put_templates, approve_templates]
