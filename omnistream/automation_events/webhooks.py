"""The send_webhook action: a signed POST of the event, after the run that decided it committed.

The run records each webhook as pending (`webhooks_pending`); this job posts them and records
each one's answer in the run, so a run says what its receivers were told. A receiver that is
down (a timeout, 429, a 5xx) is tried again with a growing delay, up to `MAX_ATTEMPTS`; a 4xx is
final. A lost job is found by the sweeper (`sweep_pending_webhooks`), and each delivery carries
`X-OmniStream-Delivery` (the run and the action), the same on every attempt, for the receiver
to drop what it already has.

A URL whose host resolves to a private, loopback, link-local or otherwise reserved address is
refused (it would let a rule reach into the network the workers run in), unless
`OMNISTREAM_WEBHOOKS_ALLOW_PRIVATE` allows it, for tests and on-premise receivers.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta
from typing import Any
from uuid import UUID

import httpx
import msgspec
import structlog
from arq import Retry

from omnistream.automation.schemas import SendWebhookAction
from omnistream.automation_events import repository
from omnistream.kit.targets import Refused, check_target

log = structlog.get_logger(__name__)

MAX_ATTEMPTS = 6
TIMEOUT_SECONDS = 10.0
SIGNATURE_HEADER = "X-OmniStream-Signature"


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def post(
    client: httpx.AsyncClient, action: SendWebhookAction, body: bytes, delivery: str, *, allow_private: bool
) -> dict[str, Any]:
    """One delivery attempt: its outcome as the run records it. Raises Retry when worth trying again."""
    await check_target(action.url, allow_private=allow_private)
    headers = {**action.headers, "content-type": "application/json", "x-omnistream-delivery": delivery}
    if action.secret:
        headers[SIGNATURE_HEADER] = signature(action.secret, body)
    response = await client.post(action.url, content=body, headers=headers, timeout=TIMEOUT_SECONDS)
    status = response.status_code
    return {"status_code": status, "retryable": status == 429 or status >= 500}


async def deliver_automation_webhooks(ctx: dict[str, Any], tenant_id: str, run_id: str) -> str:
    """Post the run's pending webhooks (an arq job, enqueued after the run committed)."""
    db, settings = ctx["db"], ctx["settings"]
    tenant, run = UUID(tenant_id), UUID(run_id)
    async with db.tenant(tenant) as conn:
        row = await repository.lock_run_for_webhooks(conn, tenant, run)
        if row is None or not row["webhooks_pending"]:
            return "nothing pending"
        result = dict(row["result"])
        configured = row["rule_snapshot"]["actions"]
        event = await repository.get_event(conn, tenant, row["event_id"])
    body = msgspec.json.encode(
        {
            "event": msgspec.to_builtins(event) if event else {"id": str(row["event_id"])},
            "rule_id": str(row["rule_id"]),
            "run_id": run_id,
        }
    )
    attempt = ctx.get("job_try", 1)
    retry = False
    async with httpx.AsyncClient(follow_redirects=False) as client:
        for index, outcome in enumerate(result.get("actions", [])):
            detail = outcome.get("detail") or {}
            if outcome.get("type") != "send_webhook" or detail.get("delivery") != "pending":
                continue
            action = msgspec.convert(configured[index], SendWebhookAction)
            try:
                answer = await post(
                    client, action, body, f"{run_id}:{index}", allow_private=settings.webhooks_allow_private
                )
            except Refused as refused:
                answer = {"error": str(refused), "retryable": False}
            except httpx.HTTPError as exc:
                answer = {"error": f"{type(exc).__name__}: {exc}", "retryable": True}
            if answer.pop("retryable") and attempt < MAX_ATTEMPTS:
                retry = True
                detail["last_error"] = answer
                continue
            ok = 200 <= answer.get("status_code", 0) < 300
            detail.update(answer, delivery="delivered" if ok else "failed", attempts=attempt)
            outcome["detail"] = detail
    pending = any(
        a.get("type") == "send_webhook" and (a.get("detail") or {}).get("delivery") == "pending"
        for a in result.get("actions", [])
    )
    async with db.tenant(tenant) as conn:
        await repository.set_run_result(conn, tenant, run, result, pending)
    if retry:
        raise Retry(defer=min(2**attempt, 300))
    return "finished"


async def sweep_pending_webhooks(ctx: dict[str, Any]) -> int:
    """Enqueue again the runs whose webhooks still wait a minute after the run (a lost job)."""
    from omnistream.automation_events.processing import enqueue_webhooks

    async with ctx["db"].anonymous() as conn:
        due = await repository.runs_with_pending_webhooks(conn, timedelta(minutes=1), 1000)
    for row in due:
        await enqueue_webhooks(ctx["redis"], row["tenant_id"], row["run_id"])
    return len(due)
