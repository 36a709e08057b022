"""WhatsApp message templates: created on and synced from the business account (WABA) at Meta,
kept here so that sends can be checked against them before anything is queued.

The messages area calls `validate_template_send` for every WhatsApp template message: the template
must be known and APPROVED, and the parameters must fill exactly its variables.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any
from uuid import UUID

import asyncpg
import msgspec
import structlog

from omnistream.activity import service as activity
from omnistream.channels.graph import GraphClient, GraphError
from omnistream.config import Settings
from omnistream.db import Database
from omnistream.errors import BadGateway, Conflict, Unprocessable, not_found
from omnistream.integrations import service as integrations
from omnistream.kit.pagination import ListParams, page_of
from omnistream.security.principal import Actor
from omnistream.wa_templates import repository
from omnistream.wa_templates.schemas import (
    MEDIA_FORMATS,
    BodyComponent,
    ButtonsComponent,
    CopyCodeButton,
    FooterComponent,
    HeaderComponent,
    HeaderMediaUpdate,
    OtpButton,
    PhoneNumberButton,
    QuickReplyButton,
    SyncResult,
    UrlButton,
    WaTemplate,
    WaTemplateCreate,
    WaTemplateList,
    WaTemplateSync,
)

log = structlog.get_logger(__name__)

SYNC_FIELDS = "name,language,status,category,components,id,rejected_reason,quality_score"
SYNC_PAGE_SIZE = 100
MAX_SYNC_PAGES = 500  # 50,000 templates: far past Meta's per-account limit; a paging loop ends here
KNOWN_STATUSES = frozenset(
    {
        "PENDING",
        "APPROVED",
        "REJECTED",
        "PAUSED",
        "DISABLED",
        "IN_APPEAL",
        "PENDING_DELETION",
        "DELETED",
        "LIMIT_EXCEEDED",
        "ARCHIVED",
    }
)
KNOWN_CATEGORIES = frozenset({"MARKETING", "UTILITY", "AUTHENTICATION"})
BUTTON_LIMITS = {"QUICK_REPLY": 10, "URL": 2, "PHONE_NUMBER": 1, "COPY_CODE": 1, "OTP": 1}
_VARIABLE = re.compile(r"\{\{([^{}]*)\}\}")
NO_ACCOUNT = "connect a WhatsApp account first (an active number of this business account, with its access token)"


# ---------------------------------------------------------------- variables


def variable_count(text: str, field: str, *, most: int | None = None) -> int:
    """How many variables `text` has: {{1}} to {{n}}, each number from 1 to n used (in any order,
    any number of times), nothing else between double braces."""
    numbers = set()
    for match in _VARIABLE.finditer(text):
        name = match[1].strip()
        if not name.isdigit() or name != match[1]:
            raise Unprocessable(
                f"{field}: variables are written {{{{1}}}}, {{{{2}}}}, ...; not {match[0]}", field=field
            )
        numbers.add(int(name))
    count = len(numbers)
    if numbers != set(range(1, count + 1)):
        raise Unprocessable(
            f"{field}: variables must be numbered from {{{{1}}}} without gaps (found {sorted(numbers)})", field=field
        )
    if most is not None and count > most:
        raise Unprocessable(f"{field}: at most {most} variable{'s' if most != 1 else ''} here", field=field)
    return count


# ---------------------------------------------------------------- creating: Meta's rules


def check_components(data: WaTemplateCreate) -> None:
    """Meta's rules for a template's components that its schema cannot say (422 naming the field)."""
    kinds = Counter(type(c).__name__ for c in data.components)
    for kind, count in kinds.items():
        if count > 1:
            raise Unprocessable(
                f"a template has at most one {kind.removesuffix('Component').upper()}", field="components"
            )
    if kinds["BodyComponent"] != 1:
        raise Unprocessable("a template needs a BODY", field="components")
    auth = data.category == "AUTHENTICATION"
    for index, component in enumerate(data.components):
        field = f"components[{index}]"
        if isinstance(component, HeaderComponent):
            if auth:
                raise Unprocessable("AUTHENTICATION templates have no HEADER", field=field)
            _check_header(component, field)
        elif isinstance(component, BodyComponent):
            _check_body(component, field, auth)
        elif isinstance(component, FooterComponent):
            _check_footer(component, field, auth)
        elif isinstance(component, ButtonsComponent):
            _check_buttons(component, field, auth)
    if auth and kinds["ButtonsComponent"] != 1:
        raise Unprocessable("AUTHENTICATION templates need BUTTONS with one OTP button", field="components")


def _check_header(header: HeaderComponent, field: str) -> None:
    example = header.example if header.example is not msgspec.UNSET else None
    if header.format == "TEXT":
        if header.text is msgspec.UNSET:
            raise Unprocessable(f"{field}.text: a TEXT header needs its text", field=f"{field}.text")
        count = variable_count(header.text, f"{field}.text", most=1)
        given = example.header_text if example is not None and example.header_text is not msgspec.UNSET else None
        if count and given is None:
            raise Unprocessable(
                f"{field}.example.header_text: a header with a variable needs a sample value", field=f"{field}.example"
            )
        if not count and given is not None:
            raise Unprocessable(f"{field}.example.header_text: the header has no variable", field=f"{field}.example")
        if example is not None and example.header_handle is not msgspec.UNSET:
            raise Unprocessable(f"{field}.example.header_handle is for media headers", field=f"{field}.example")
        return
    if header.text is not msgspec.UNSET:
        raise Unprocessable(f"{field}.text: only a TEXT header has text", field=f"{field}.text")
    if example is not None and example.header_text is not msgspec.UNSET:
        raise Unprocessable(f"{field}.example.header_text is for TEXT headers", field=f"{field}.example")
    has_handle = example is not None and example.header_handle is not msgspec.UNSET
    if header.format in MEDIA_FORMATS and not has_handle:
        raise Unprocessable(
            f"{field}.example.header_handle: a {header.format} header needs a sample (an uploaded media handle)",
            field=f"{field}.example",
        )
    if header.format == "LOCATION" and has_handle:
        raise Unprocessable(f"{field}.example: a LOCATION header has no sample", field=f"{field}.example")


def _check_body(body: BodyComponent, field: str, auth: bool) -> None:
    if auth:
        if body.text is not msgspec.UNSET or body.example is not msgspec.UNSET:
            raise Unprocessable(
                f"{field}: an AUTHENTICATION body has no text or example of its own (Meta writes it)", field=field
            )
        return
    if body.add_security_recommendation is not msgspec.UNSET:
        raise Unprocessable(f"{field}.add_security_recommendation is for AUTHENTICATION templates", field=field)
    if body.text is msgspec.UNSET:
        raise Unprocessable(f"{field}.text: the BODY needs its text", field=f"{field}.text")
    count = variable_count(body.text, f"{field}.text")
    samples = body.example.body_text[0] if body.example is not msgspec.UNSET else None
    if count and samples is None:
        raise Unprocessable(
            f"{field}.example.body_text: give a sample value for each of the {count} variables",
            field=f"{field}.example",
        )
    if samples is not None and len(samples) != count:
        raise Unprocessable(
            f"{field}.example.body_text: {len(samples)} sample values for {count} variables", field=f"{field}.example"
        )


def _check_footer(footer: FooterComponent, field: str, auth: bool) -> None:
    if auth:
        if footer.text is not msgspec.UNSET:
            raise Unprocessable(f"{field}: an AUTHENTICATION footer has only code_expiration_minutes", field=field)
        return
    if footer.code_expiration_minutes is not msgspec.UNSET:
        raise Unprocessable(f"{field}.code_expiration_minutes is for AUTHENTICATION templates", field=field)
    if footer.text is msgspec.UNSET:
        raise Unprocessable(f"{field}.text: the FOOTER needs its text", field=f"{field}.text")
    variable_count(footer.text, f"{field}.text", most=0)


def _check_buttons(component: ButtonsComponent, field: str, auth: bool) -> None:
    kinds = [type(b) for b in component.buttons]
    names = {
        QuickReplyButton: "QUICK_REPLY",
        UrlButton: "URL",
        PhoneNumberButton: "PHONE_NUMBER",
        CopyCodeButton: "COPY_CODE",
        OtpButton: "OTP",
    }
    for kind, count in Counter(names[k] for k in kinds).items():
        if count > BUTTON_LIMITS[kind]:
            raise Unprocessable(
                f"{field}.buttons: at most {BUTTON_LIMITS[kind]} {kind} buttons", field=f"{field}.buttons"
            )
    if auth != (OtpButton in kinds) or (auth and len(kinds) != 1):
        raise Unprocessable(
            f"{field}.buttons: an AUTHENTICATION template has exactly one OTP button, and only it has one",
            field=f"{field}.buttons",
        )
    quick = [k is QuickReplyButton for k in kinds]
    if any(quick) and not all(quick):
        first, last = quick.index(True), len(quick) - 1 - quick[::-1].index(True)
        if not all(quick[first : last + 1]):
            raise Unprocessable(
                f"{field}.buttons: quick replies must be grouped together, not mixed with other buttons",
                field=f"{field}.buttons",
            )
    for index, button in enumerate(component.buttons):
        at = f"{field}.buttons[{index}]"
        if isinstance(button, UrlButton):
            count = variable_count(button.url, f"{at}.url", most=1)
            if count and not button.url.endswith("{{1}}"):
                raise Unprocessable(f"{at}.url: the variable must come at the end of the URL", field=f"{at}.url")
            if count and button.example is msgspec.UNSET:
                raise Unprocessable(f"{at}.example: a URL with a variable needs a sample URL", field=f"{at}.example")
            if not count and button.example is not msgspec.UNSET:
                raise Unprocessable(f"{at}.example: the URL has no variable", field=f"{at}.example")
        elif (
            isinstance(button, OtpButton)
            and button.otp_type != "COPY_CODE"
            and (button.package_name is msgspec.UNSET or button.signature_hash is msgspec.UNSET)
        ):
            raise Unprocessable(f"{at}: a {button.otp_type} button needs package_name and signature_hash", field=at)


# ---------------------------------------------------------------- sending: parameters against the template


def _upper(value: Any) -> str:
    return str(value).upper() if isinstance(value, str) else ""


def check_parameters(
    template: list[dict[str, Any]], category: str, header_media_url: str | None, components: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The components to send for a template with `template`'s components (Meta's shape), given the
    message's `components` (the send shape: header, body and button parameters); 422 when they do
    not fill exactly the template's variables.

    A media header without a parameter takes the template's `header_media_url`."""
    header = next((c for c in template if _upper(c.get("type")) == "HEADER"), None)
    body = next((c for c in template if _upper(c.get("type")) == "BODY"), None)
    buttons = next((c for c in template if _upper(c.get("type")) == "BUTTONS"), None)
    body_text = (body or {}).get("text")
    body_count = _count_or_zero(body_text) if isinstance(body_text, str) else (1 if category == "AUTHENTICATION" else 0)

    given: dict[str, dict[str, Any]] = {}
    given_buttons: dict[int, dict[str, Any]] = {}
    for position, component in enumerate(components):
        field = f"template.components[{position}]"
        kind = str(component.get("type", "")).lower() if isinstance(component, dict) else ""
        if kind in ("header", "body"):
            if kind in given:
                raise Unprocessable(f"{field}: {kind} parameters are given twice", field="template.components")
            given[kind] = component
        elif kind == "button":
            index = _button_index(component.get("index"), field)
            if index in given_buttons:
                raise Unprocessable(f"{field}: button {index} is given twice", field="template.components")
            given_buttons[index] = component
        else:
            raise Unprocessable(
                f"{field}: a component to send is a header, body or button, not {kind or 'untyped'}",
                field="template.components",
            )

    sent: list[dict[str, Any]] = []
    header_part = _header_parameters(header, given.get("header"), header_media_url)
    if header_part is not None:
        sent.append(header_part)
    body_params = _parameters(given.get("body"), "body")
    if len(body_params) != body_count:
        raise Unprocessable(
            f"the template's body has {body_count} variable{'s' if body_count != 1 else ''}; "
            f"{len(body_params)} body parameter{'s were' if len(body_params) != 1 else ' was'} given",
            field="template.components",
            expected_body_parameters=body_count,
        )
    for number, param in enumerate(body_params, 1):
        if not isinstance(param, dict) or param.get("type") not in ("text", "currency", "date_time"):
            raise Unprocessable(
                f"body parameter {number} must be text, currency or date_time", field="template.components"
            )
        if param["type"] == "text" and not (isinstance(param.get("text"), str) and param["text"].strip()):
            raise Unprocessable(f"body parameter {number} needs its text", field="template.components")
    if body_params:
        sent.append({"type": "body", "parameters": body_params})

    template_buttons = (buttons or {}).get("buttons") or []
    for index, button in enumerate(template_buttons if isinstance(template_buttons, list) else []):
        needs = _button_needs(button, category)
        part = given_buttons.pop(index, None)
        if needs is None:
            if part is not None:
                if (
                    str(part.get("sub_type", "")).lower() != "quick_reply"
                    or _upper(button.get("type")) != "QUICK_REPLY"
                ):
                    raise Unprocessable(
                        f"button {index} of the template takes no parameter", field="template.components"
                    )
                sent.append(part)
            continue
        sub_type, param_type = needs
        if part is None:
            raise Unprocessable(
                f"button {index} of the template needs a {param_type} parameter (sub_type {sub_type})",
                field="template.components",
            )
        params = _parameters(part, f"button {index}")
        if str(part.get("sub_type", "")).lower() != sub_type or len(params) != 1 or params[0].get("type") != param_type:
            raise Unprocessable(
                f"button {index} of the template takes sub_type {sub_type} with one {param_type} parameter",
                field="template.components",
            )
        if not (isinstance(params[0].get(param_type), str) and params[0][param_type].strip()):
            raise Unprocessable(f"button {index}'s {param_type} parameter needs its value", field="template.components")
        sent.append(part)
    if given_buttons:
        raise Unprocessable(f"the template has no button {min(given_buttons)}", field="template.components")
    return sent


def _count_or_zero(text: str) -> int:
    try:
        return variable_count(text, "template")
    except Unprocessable:
        return len(set(_VARIABLE.findall(text)))  # Meta approved it: take its variables as they are


def _button_index(raw: Any, field: str) -> int:
    text = str(raw) if isinstance(raw, (int, str)) and not isinstance(raw, bool) else ""
    if not text.isdigit() or int(text) > 9:
        raise Unprocessable(f"{field}: a button component needs its index (0 to 9)", field="template.components")
    return int(text)


def _parameters(component: dict[str, Any] | None, what: str) -> list[dict[str, Any]]:
    if component is None:
        return []
    params = component.get("parameters", [])
    if not isinstance(params, list) or not all(isinstance(p, dict) for p in params):
        raise Unprocessable(f"the {what} parameters must be a list of objects", field="template.components")
    return params


def _button_needs(button: Any, category: str) -> tuple[str, str] | None:
    if not isinstance(button, dict):
        return None
    kind = _upper(button.get("type"))
    if kind == "URL" and "{{" in str(button.get("url", "")):
        return "url", "text"
    if kind == "OTP" or (kind == "URL" and category == "AUTHENTICATION"):
        return "url", "text"
    if kind == "COPY_CODE":
        return "copy_code", "coupon_code"
    return None


def _header_parameters(
    header: dict[str, Any] | None, given: dict[str, Any] | None, header_media_url: str | None
) -> dict[str, Any] | None:
    fmt = _upper((header or {}).get("format"))
    needs_text = fmt == "TEXT" and "{{" in str((header or {}).get("text", ""))
    if header is None or (fmt == "TEXT" and not needs_text):
        if given is not None and _parameters(given, "header"):
            raise Unprocessable("the template's header takes no parameter", field="template.components")
        return None
    params = _parameters(given, "header")
    if fmt in MEDIA_FORMATS and not params and header_media_url:
        kind = fmt.lower()
        return {"type": "header", "parameters": [{"type": kind, kind: {"link": header_media_url}}]}
    expected = "text" if fmt == "TEXT" else fmt.lower()
    if len(params) != 1 or params[0].get("type") != expected:
        raise Unprocessable(f"the template's {fmt} header needs one {expected} parameter", field="template.components")
    value = params[0].get(expected)
    if fmt == "TEXT":
        ok = isinstance(value, str) and bool(value.strip())
    elif fmt == "LOCATION":
        ok = isinstance(value, dict) and all(isinstance(value.get(k), (int, float)) for k in ("latitude", "longitude"))
    else:
        ok = isinstance(value, dict) and (
            (isinstance(value.get("link"), str) and value["link"].startswith(("https://", "http://")))
            or (isinstance(value.get("id"), str) and bool(value["id"]))
        )
    if not ok:
        raise Unprocessable(f"the {fmt} header parameter is incomplete", field="template.components")
    return given


async def validate_template_send(
    conn: Any, tenant_id: UUID, name: str, language: str, components: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The components to send for template `name` in `language`: 422 unless the template is known
    here, APPROVED, and the parameters fill exactly its variables. `conn` is a transaction or a
    tenant read of `tenant_id`."""
    template = await repository.for_send(conn, tenant_id, name, language)
    if template is None:
        raise Unprocessable(
            f"no WhatsApp template {name!r} in {language} is known; create it or sync the templates from Meta",
            field="template",
        )
    if template.status != "APPROVED":
        raise Unprocessable(
            f"the template {name!r} ({language}) is {template.status}; only APPROVED templates can be sent",
            field="template",
        )
    return check_parameters(template.components, template.category, template.header_media_url, components)


# ---------------------------------------------------------------- the API


def _graph_failure(exc: GraphError, doing: str) -> BadGateway:
    return BadGateway(f"Meta refused to {doing}: {exc.text}", graph_error_code=exc.code)


async def _account(db: Database, settings: Settings, actor: Actor, business_account_id: str | None) -> Any:
    async with db.read(actor.tenant_id) as conn:
        account = await integrations.template_account(conn, settings, actor.tenant_id, business_account_id)
    if account is None or not account.business_account_id or not account.access_token:
        raise Unprocessable(NO_ACCOUNT, field="business_account_id")
    return account


async def list_templates(
    db: Database,
    actor: Actor,
    params: ListParams,
    *,
    status: str | None,
    category: str | None,
    language: str | None,
    q: str | None,
    business_account_id: str | None,
) -> WaTemplateList:
    filters = {
        "status": status,
        "category": category,
        "language": language,
        "q": q,
        "business_account_id": business_account_id,
    }
    async with db.read(actor.tenant_id) as conn:
        rows, total = await repository.list_page(conn, actor.tenant_id, params, filters)
    rows, next_cursor = page_of(rows, params)
    return WaTemplateList(templates=rows, next_cursor=next_cursor, total=total)


async def get_template(db: Database, actor: Actor, template_id: UUID) -> WaTemplate:
    async with db.read(actor.tenant_id) as conn:
        template = await repository.get(conn, actor.tenant_id, template_id)
    if template is None:
        raise not_found("template")
    return template


def _duplicate(name: str, language: str) -> Conflict:
    return Conflict(f"a template {name!r} in {language} exists in this business account", field="name")


async def create_template(db: Database, settings: Settings, actor: Actor, data: WaTemplateCreate) -> WaTemplate:
    check_components(data)
    account = await _account(db, settings, actor, data.business_account_id)
    waba = account.business_account_id
    async with db.read(actor.tenant_id) as conn:
        if await repository.exists(conn, actor.tenant_id, waba, data.name, data.language):
            raise _duplicate(data.name, data.language)
    components = msgspec.to_builtins(data.components)
    payload = {"name": data.name, "language": data.language, "category": data.category, "components": components}
    async with GraphClient(settings) as graph:
        try:
            answer = await graph.request("POST", f"{waba}/message_templates", token=account.access_token, json=payload)
        except GraphError as exc:
            raise _graph_failure(exc, "create the template") from exc
    status = _upper(answer.get("status")) if _upper(answer.get("status")) in KNOWN_STATUSES else "PENDING"
    category = _upper(answer.get("category")) if _upper(answer.get("category")) in KNOWN_CATEGORIES else data.category
    async with db.tenant(actor.tenant_id) as conn:
        try:
            template_id = await repository.insert(
                conn,
                actor.tenant_id,
                business_account_id=waba,
                provider_template_id=str(answer["id"]) if answer.get("id") is not None else None,
                name=data.name,
                language=data.language,
                category=category,
                status=status,
                components=components,
                created_by=actor.user_id,
            )
        except asyncpg.UniqueViolationError as exc:
            raise _duplicate(data.name, data.language) from exc
        await activity.record(
            conn, actor, "wa_template.created", "wa_template", template_id, name=data.name, language=data.language
        )
        template = await repository.get(conn, actor.tenant_id, template_id)
    assert template is not None
    return template


def _synced_fields(item: dict[str, Any]) -> dict[str, Any] | None:
    name, language = item.get("name"), item.get("language")
    status, category = _upper(item.get("status")), _upper(item.get("category"))
    if not (isinstance(name, str) and name and isinstance(language, str) and language):
        return None
    if status not in KNOWN_STATUSES or category not in KNOWN_CATEGORIES:
        log.warning("template from Meta skipped", name=name, status=status, category=category)
        return None
    reason = item.get("rejected_reason")
    quality = item.get("quality_score")
    score = quality.get("score") if isinstance(quality, dict) else quality
    components = item.get("components")
    return {
        "name": name,
        "language": language,
        "status": status,
        "category": category,
        "provider_template_id": str(item["id"]) if item.get("id") is not None else None,
        "rejected_reason": reason if isinstance(reason, str) and reason and reason != "NONE" else None,
        "components": components if isinstance(components, list) else [],
        "quality_score": score if isinstance(score, str) and score else None,
    }


async def _all_of_meta(settings: Settings, waba: str, token: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    async with GraphClient(settings) as graph:
        try:
            answer = await graph.request(
                "GET",
                f"{waba}/message_templates",
                token=token,
                params={"fields": SYNC_FIELDS, "limit": SYNC_PAGE_SIZE},
            )
            for _ in range(MAX_SYNC_PAGES):
                data = answer.get("data") if isinstance(answer.get("data"), list) else []
                items.extend(item for item in data if isinstance(item, dict))
                paging = answer.get("paging") if isinstance(answer.get("paging"), dict) else {}
                after = (paging.get("cursors") or {}).get("after") if isinstance(paging.get("cursors"), dict) else None
                if not paging.get("next") or not after or not data:
                    break
                # The cursor, not the `next` link: the link is Meta's host, the request goes where the settings say.
                answer = await graph.request(
                    "GET",
                    f"{waba}/message_templates",
                    token=token,
                    params={"fields": SYNC_FIELDS, "limit": SYNC_PAGE_SIZE, "after": after},
                )
        except GraphError as exc:
            raise _graph_failure(exc, "list the templates") from exc
    return items


async def sync_templates(db: Database, settings: Settings, actor: Actor, data: WaTemplateSync) -> SyncResult:
    """Bring the business account's templates from Meta; Meta's view wins for what it knows."""
    account = await _account(db, settings, actor, data.business_account_id)
    waba = account.business_account_id
    items = await _all_of_meta(settings, waba, account.access_token)
    counts = Counter[str]()
    async with db.tenant(actor.tenant_id) as conn:
        for item in items:
            fields = _synced_fields(item)
            if fields is None:
                continue
            outcome = await repository.upsert_synced(conn, actor.tenant_id, waba, fields)
            counts[outcome] += 1
        await activity.record(
            conn, actor, "wa_template.synced", "wa_template", None, business_account_id=waba, **dict(counts)
        )
    return SyncResult(
        business_account_id=waba,
        created=counts["created"],
        updated=counts["updated"],
        unchanged=counts["unchanged"],
        total=len(items),
    )


async def delete_template(db: Database, actor: Actor, template_id: UUID) -> None:
    """Forget the template here; Meta keeps it (a sync brings it back)."""
    async with db.tenant(actor.tenant_id) as conn:
        deleted = await repository.delete(conn, actor.tenant_id, template_id)
        if deleted is None:
            raise not_found("template")
        await activity.record(
            conn,
            actor,
            "wa_template.deleted",
            "wa_template",
            template_id,
            name=deleted["name"],
            language=deleted["language"],
        )


async def set_header_media(db: Database, actor: Actor, template_id: UUID, data: HeaderMediaUpdate) -> WaTemplate:
    async with db.tenant(actor.tenant_id) as conn:
        template = await repository.get(conn, actor.tenant_id, template_id)
        if template is None:
            raise not_found("template")
        header = next((c for c in template.components if _upper(c.get("type")) == "HEADER"), None)
        fmt = _upper((header or {}).get("format"))
        if fmt not in MEDIA_FORMATS:
            raise Unprocessable(
                "only a template whose header is an IMAGE, VIDEO or DOCUMENT has header media"
                + (f" (this header is {fmt})" if fmt else " (this template has no header)"),
                field="header_media_url",
            )
        await repository.set_header_media_url(conn, actor.tenant_id, template_id, data.header_media_url)
        await activity.record(
            conn, actor, "wa_template.header_media_set", "wa_template", template_id, url=data.header_media_url
        )
        updated = await repository.get(conn, actor.tenant_id, template_id)
    assert updated is not None
    return updated


# ---------------------------------------------------------------- Meta's news (webhooks)

TEMPLATE_NEWS = frozenset(
    {"message_template_status_update", "message_template_quality_update", "template_category_update"}
)
# Review events as Meta names them, to our statuses; events that are no status (FLAGGED: quality) are None.
REVIEW_STATUSES = {
    "APPROVED": "APPROVED",
    "REINSTATED": "APPROVED",
    "REJECTED": "REJECTED",
    "PAUSED": "PAUSED",
    "DISABLED": "DISABLED",
    "IN_APPEAL": "IN_APPEAL",
    "PENDING": "PENDING",
    "PENDING_DELETION": "PENDING_DELETION",
    "DELETED": "DELETED",
    "LIMIT_EXCEEDED": "LIMIT_EXCEEDED",
    "ARCHIVED": "ARCHIVED",
}
CATEGORIES = frozenset({"MARKETING", "UTILITY", "AUTHENTICATION"})


async def apply_meta_news(db: Database, tenant_id: UUID, business_account_id: str, kind: str, data: Any) -> int:
    """A template webhook of the business account: its review, quality or category, applied to
    the template it names. The number of templates changed (0 for one not known here)."""
    if kind not in TEMPLATE_NEWS or not isinstance(data, dict):
        return 0
    event, category = _upper(data.get("event")), _upper(data.get("new_category"))
    news = {
        "status": REVIEW_STATUSES.get(event) if kind == "message_template_status_update" else None,
        "reason": _text(data.get("reason")),
        "quality_score": _upper(data.get("new_quality_score")) or None
        if kind == "message_template_quality_update"
        else None,
        "category": category if category in CATEGORIES else None,
        "provider_template_id": _text(data.get("message_template_id")),
        "name": _text(data.get("message_template_name")),
        "language": _text(data.get("message_template_language")),
    }
    if not any(news[k] for k in ("status", "quality_score", "category")):
        return 0
    async with db.tenant(tenant_id) as conn:
        return await repository.apply_review(conn, tenant_id, business_account_id, **news)


def _text(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    text = str(value).strip()
    return text[:512] if text and text.upper() != "NONE" else None
