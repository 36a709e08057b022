"""What a matched rule does: each action through the area that owns the change, inside the
event's transaction, as the tenant's automation (`Actor.automation`).

A run's actions go in order and stop at the first that fails; what the ones before it changed is
undone with it (a savepoint per rule), so a run either did everything it reports or nothing. Its
outcome, and each action's, is what the run records. Webhooks are not sent here: the run
records them as pending and a job posts them after the commit (`webhooks.deliver`).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg

from omnistream.agents import service as agents
from omnistream.automation.schemas import (
    Action,
    AddNoteAction,
    AddTagsAction,
    AssignAgentAction,
    AssignDivisionAction,
    AutomationRule,
    RemoveTagsAction,
    SendMessageAction,
    SendTemplateAction,
    SendWebhookAction,
    SetPriorityAction,
    SetStatusAction,
    UnassignAction,
)
from omnistream.automation.service import Outbox
from omnistream.automation.variables import render
from omnistream.automation_events import repository
from omnistream.automation_events.schemas import ActionOutcome
from omnistream.contacts import service as contacts
from omnistream.conversations import service as conversations
from omnistream.errors import AppError
from omnistream.messages import service as messages
from omnistream.messages.schemas import MessageSend, Template
from omnistream.notes import service as notes
from omnistream.security.principal import Actor


class ActionFailed(Exception):
    """An action that cannot be done as the rule says; the run records it and stops."""


@dataclass
class RunEffects:
    """What a run leaves for after the commit: messages to deliver, webhooks to post."""

    messages: list[UUID] = field(default_factory=list)
    webhooks: int = 0
    """Webhook actions of the run being acted out."""
    webhook_runs: list[UUID] = field(default_factory=list)
    """Runs whose webhooks wait to be posted."""


@dataclass
class ActionContext:
    conn: asyncpg.Connection
    actor: Actor
    rule: AutomationRule
    conversation_id: UUID
    outbox: Outbox
    effects: RunEffects
    event_payload: dict[str, Any]
    event_id: UUID
    event_type: str
    _variables: dict[str, str] | None = None

    async def row(self) -> asyncpg.Record:
        """The conversation as it is now (the actions before may have changed it), locked."""
        row = await conversations.lock_for_automation(self.conn, self.actor.tenant_id, self.conversation_id)
        if row is None:
            raise ActionFailed("the conversation no longer exists")
        return row

    async def variables(self) -> dict[str, str]:
        """The values of the `{{...}}` variables (automation.variables), as the conversation is now."""
        if self._variables is None:
            row = await self.row()
            contact = await contacts.get_in(self.conn, self.actor.tenant_id, row["contact_id"])
            agent = (
                await agents.get_in(self.conn, self.actor.tenant_id, row["assigned_agent_id"])
                if row["assigned_agent_id"]
                else None
            )
            message = self.event_payload.get("message") or {}
            self._variables = {
                "contact.name": contact.name if contact else "",
                "contact.phone": (contact.phone if contact else None) or "",
                "contact.email": (contact.email if contact else None) or "",
                "conversation.id": str(self.conversation_id),
                "conversation.channel": row["channel"],
                "conversation.status": row["status"],
                "conversation.priority": row["priority"],
                "agent.name": agent.name if agent else "",
                "message.text": message.get("text") or "",
            }
        return self._variables


Performer = Callable[[ActionContext, Any], Coroutine[Any, Any, dict[str, Any]]]


async def _assign_agent(ctx: ActionContext, action: AssignAgentAction) -> dict[str, Any]:
    row = await ctx.row()
    if action.agent_id is not None:
        await conversations.assign_in(ctx.conn, ctx.actor, row, action.agent_id, None)
        return {"agent_id": str(action.agent_id)}
    division_id = action.division_id or row["division_id"]
    if division_id is None:
        raise ActionFailed(f"{action.strategy} needs a division: the conversation has none and the action names none")
    candidates = await conversations.online_agents_by_load(ctx.conn, ctx.actor.tenant_id, division_id)
    if not candidates:
        raise ActionFailed("no agent of the division is online")
    if action.strategy == "least_busy":
        agent_id = candidates[0][0]
    else:
        # Round robin: the next online agent, by id, after the one this rule chose last here.
        ids = sorted(agent for agent, _ in candidates)
        last = await repository.last_round_robin_agent(ctx.conn, ctx.actor.tenant_id, ctx.rule.id, division_id)
        agent_id = next((a for a in ids if last is not None and a > last), ids[0])
    await conversations.assign_in(ctx.conn, ctx.actor, row, agent_id, division_id)
    return {"agent_id": str(agent_id), "strategy": action.strategy, "division_id": str(division_id)}


async def _assign_division(ctx: ActionContext, action: AssignDivisionAction) -> dict[str, Any]:
    await conversations.move_to_division_in(ctx.conn, ctx.actor, await ctx.row(), action.division_id)
    return {"division_id": str(action.division_id)}


async def _unassign(ctx: ActionContext, action: UnassignAction) -> dict[str, Any]:
    row = await ctx.row()
    await conversations.assign_in(ctx.conn, ctx.actor, row, None, None)
    return {"previous_agent_id": str(row["assigned_agent_id"]) if row["assigned_agent_id"] else None}


async def _add_tags(ctx: ActionContext, action: AddTagsAction) -> dict[str, Any]:
    await conversations.change_tags_in(ctx.conn, ctx.actor, await ctx.row(), action.tags, [])
    return {"tags": action.tags}


async def _remove_tags(ctx: ActionContext, action: RemoveTagsAction) -> dict[str, Any]:
    await conversations.change_tags_in(ctx.conn, ctx.actor, await ctx.row(), [], action.tags)
    return {"tags": action.tags}


async def _set_status(ctx: ActionContext, action: SetStatusAction) -> dict[str, Any]:
    row = await ctx.row()
    await conversations.set_status_in(ctx.conn, ctx.actor, row, action.status, ctx.outbox, f"rule {ctx.rule.name}")
    return {"status": action.status, "previous_status": row["status"]}


async def _set_priority(ctx: ActionContext, action: SetPriorityAction) -> dict[str, Any]:
    await conversations.set_priority_in(ctx.conn, ctx.actor, await ctx.row(), action.priority)
    return {"priority": action.priority}


async def _send(ctx: ActionContext, data: MessageSend) -> dict[str, Any]:
    message_id = await messages.queue_outbound_in(ctx.conn, ctx.actor, await ctx.row(), data)
    ctx.effects.messages.append(message_id)
    return {"message_id": str(message_id)}


async def _send_message(ctx: ActionContext, action: SendMessageAction) -> dict[str, Any]:
    text = render(action.text, await ctx.variables())
    return await _send(ctx, MessageSend(type="text", text=text)) | {"text": text}


async def _send_template(ctx: ActionContext, action: SendTemplateAction) -> dict[str, Any]:
    values = await ctx.variables()
    parameters = [{"type": "text", "text": render(p, values)} for p in action.parameters]
    components = [{"type": "body", "parameters": parameters}] if parameters else []
    template = Template(name=action.name, language=action.language, components=components)
    return await _send(ctx, MessageSend(type="template", template=template)) | {"template": action.name}


async def _add_note(ctx: ActionContext, action: AddNoteAction) -> dict[str, Any]:
    text = render(action.text, await ctx.variables())
    note_id = await notes.add_in(ctx.conn, ctx.actor, ctx.conversation_id, text)
    return {"note_id": str(note_id), "text": text}


async def _send_webhook(ctx: ActionContext, action: SendWebhookAction) -> dict[str, Any]:
    ctx.effects.webhooks += 1
    return {"url": action.url, "delivery": "pending"}


PERFORMERS: dict[type[Action], Performer] = {
    AssignAgentAction: _assign_agent,
    AssignDivisionAction: _assign_division,
    UnassignAction: _unassign,
    AddTagsAction: _add_tags,
    RemoveTagsAction: _remove_tags,
    SetStatusAction: _set_status,
    SetPriorityAction: _set_priority,
    SendMessageAction: _send_message,
    SendTemplateAction: _send_template,
    AddNoteAction: _add_note,
    SendWebhookAction: _send_webhook,
}


def action_type(action: Action) -> str:
    return type(action).__struct_config__.tag  # type: ignore[return-value]


async def perform(ctx: ActionContext, actions: list[Action]) -> tuple[bool, list[ActionOutcome]]:
    """Do the actions in order, stopping at the first that fails; whether all succeeded, and each one's outcome."""
    outcomes: list[ActionOutcome] = []
    for action in actions:
        try:
            detail = await PERFORMERS[type(action)](ctx, action)
        except (ActionFailed, AppError) as failure:
            reason = failure.detail if isinstance(failure, AppError) else str(failure)
            outcomes.append(ActionOutcome(type=action_type(action), ok=False, error=reason))
            return False, outcomes
        outcomes.append(ActionOutcome(type=action_type(action), ok=True, detail=detail))
    return True, outcomes
