from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import Controller, get, patch, post, put
from litestar.params import FromPath, JSONBody, PathParameter

from omnistream.csat import service
from omnistream.csat.schemas import (
    CsatAnalytics,
    CsatSettings,
    CsatSettingsUpdate,
    CsatSubmit,
    CsatSubmitted,
    CsatSurvey,
)
from omnistream.kit.deps import DB, AppSettings, CurrentActor, Jobs
from omnistream.kit.openapi import ERRORS
from omnistream.kit.pagination import QueryDateTime
from omnistream.security.guards import PUBLIC_RATE_LIMITED, access


class ConversationCsatController(Controller):
    path = "/api/conversations/{conversation_id:uuid}/csat"
    tags = ["CSAT"]

    @get(
        operation_id="getConversationCsat",
        summary="Get CSAT survey for a conversation",
        opt=access("agent", "conversations.read"),
        description="The conversation's latest survey (404 when it has none).",
    )
    async def get_survey(self, db: DB, actor: CurrentActor, conversation_id: FromPath[UUID]) -> CsatSurvey:
        return await service.latest_survey(db, actor, conversation_id)

    @post(
        operation_id="createConversationCsat",
        summary="Create a CSAT survey for a conversation",
        opt=access("agent", "messages.send"),
        description="Sends the customer a message with the survey's link, valid for OMNISTREAM_CSAT_LINK_DAYS "
        "(default 7). One open survey per conversation (409 for a second); 422 when the conversation has no "
        "connected account to reach the customer, or when WhatsApp's 24-hour window has passed.",
    )
    async def create_survey(
        self, db: DB, arq: Jobs, settings: AppSettings, actor: CurrentActor, conversation_id: FromPath[UUID]
    ) -> CsatSurvey:
        return await service.create_survey(db, arq, settings, actor, conversation_id)


class CsatController(Controller):
    path = "/api/csat"
    tags = ["CSAT"]

    @get(
        "/analytics",
        operation_id="getCsatAnalytics",
        summary="CSAT analytics",
        opt=access("supervisor", "analytics.read"),
        description="Surveys sent in the range (by sending time): the average rating, how many gave each "
        "rating, and the response rate (answers / surveys sent; expired ones count as unanswered), overall "
        "and by agent (the conversation's assignee when sent), division and channel.",
    )
    async def analytics(
        self, db: DB, actor: CurrentActor, created_from: QueryDateTime = None, created_to: QueryDateTime = None
    ) -> CsatAnalytics:
        return await service.analytics(db, actor, created_from, created_to)

    @get(
        "/settings",
        operation_id="getCsatSettings",
        summary="Get the organisation's CSAT settings",
        opt=access("supervisor", "analytics.read"),
    )
    async def get_settings(self, db: DB, actor: CurrentActor) -> CsatSettings:
        return await service.get_settings(db, actor)

    @put(
        "/settings",
        operation_id="updateCsatSettings",
        summary="Update the organisation's CSAT settings",
        opt=access("admin", "conversations.manage"),
        description="`send_on_resolve`: resolving a conversation sends its customer a survey (through the "
        "worker, once per resolution; not when the conversation was reopened meanwhile).",
    )
    async def update_settings(self, db: DB, actor: CurrentActor, data: JSONBody[CsatSettingsUpdate]) -> CsatSettings:
        return await service.update_settings(db, actor, data)

    @patch(
        "/{token:str}",
        operation_id="submitCsat",
        summary="Submit a CSAT rating (the customer, by the survey's secret token)",
        opt={**PUBLIC_RATE_LIMITED, ERRORS: (410,)},
        status_code=200,
        description="No authentication: the token of the link the customer received. Answered once (409 "
        "after); an expired link is 410, an unknown one 404. Limited per client address (429).",
    )
    async def submit(
        self,
        db: DB,
        token: Annotated[str, PathParameter(min_length=1, max_length=100)],
        data: JSONBody[CsatSubmit],
    ) -> CsatSubmitted:
        return await service.submit(db, token, data)


CONTROLLERS = [ConversationCsatController, CsatController]
