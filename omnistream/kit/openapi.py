"""The OpenAPI document as a contract: what clients generate SDKs from and the fuzzer holds every
route to. Everything here is derived from how a route is declared, so a route added later is
documented without anyone listing it:

* Schemas of request and response bodies are msgspec's own (`msgspec.json.schema_components`):
  the library that validates a body describes it, so the document and the validator accept the
  same set (unknown fields refused, lengths, patterns, enums, tagged unions as `oneOf`).
* Security: a protected operation accepts the session (Bearer header or the HttpOnly cookie) or
  an `X-API-Key`; a public one (`security.guards.PUBLIC`) lists no requirement.
* Errors, all RFC 9457 problem documents (`application/problem+json`): 400 where there is input
  to get wrong, 422 where a rule can refuse it, 404 where the path names an object, 409 where a
  change can meet conflicting state, 413 and 415 where there is a body, 401 and 403 where
  credentials are needed, 429 where a limit applies, and 503 everywhere (a backing service down).
"""

from __future__ import annotations

import copy
import typing
from collections.abc import Iterator
from typing import Any

import msgspec
from litestar import Litestar, Response
from litestar._openapi.plugin import OpenAPIPlugin
from litestar.handlers import HTTPRouteHandler
from litestar.routes import HTTPRoute

from omnistream.kit.schema import Schema, pattern

PROBLEM_MEDIA_TYPE = "application/problem+json"
UNSAFE_METHODS = frozenset({"post", "put", "patch", "delete"})
RAW_BODY = "raw_body"
"""`opt` key: (msgspec type, {name: example}) of a body the handler reads as bytes (a signed
webhook, whose signature covers the exact bytes): documented as if declared, examples included."""
FILE_PART = "file_part"
"""`opt` key, with RAW_BODY: the operation also takes a multipart/form-data body whose `file` part is
a file (a CSV upload besides the JSON body), documented as a second content type."""
ERRORS = "errors"
"""`opt` key: statuses an operation answers besides those its declaration implies (sign-in: 401
for a wrong password, 429 past its own throttle)."""

# JSON Schema's formats are annotations a validator may ignore; the document also gives each the
# pattern the service enforces, so that both describe the same set. The day of a month is checked
# by the format (`2024-02-30` is no date), not by the pattern.
_DATE = r"(?!0000)[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
_TIME = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]+)?"
_OFFSET = r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
FORMAT_PATTERNS = {
    # In a body a time names its offset; in a query one without is read as UTC.
    ("body", "date-time"): pattern(f"^{_DATE}[Tt ]{_TIME}{_OFFSET}$", "must be an RFC 3339 date-time with an offset"),
    ("parameter", "date-time"): pattern(f"^{_DATE}[Tt ]{_TIME}{_OFFSET}?$", "must be an ISO 8601 date-time"),
    ("body", "date"): pattern(f"^{_DATE}$", "must be a date as YYYY-MM-DD"),
    ("body", "uuid"): pattern(
        r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$", "must be a UUID"
    ),
}

SECURITY_SCHEMES: dict[str, Any] = {
    "SessionToken": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "The access_token of POST /api/auth/login as `Authorization: Bearer <token>`.",
    },
    "SessionCookie": {
        "type": "apiKey",
        "in": "cookie",
        "name": "omnistream_session",
        "description": "The HttpOnly cookie POST /api/auth/login sets, for browsers. A POST, PUT, PATCH or "
        "DELETE authenticated by it alone also needs the session's `csrf_token` in `X-CSRF-Token` (or a "
        "same-origin `Sec-Fetch-Site`); otherwise 403.",
    },
    "ApiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "An API key from POST /api/api-keys, for integrations.",
    },
}
SIGNED_IN_SECURITY = [{name: []} for name in SECURITY_SCHEMES]


class FieldError(Schema):
    field: str
    """The field, parameter or header at fault (`agent_ids`, `rules.monday[0].end`)."""
    message: str
    source: str | None = None
    """Where it was: body, query, path, header or cookie."""


class Problem(Schema):
    """An RFC 9457 problem document. Some carry more members, named in the operation's text."""

    type: str
    title: str
    status: int
    detail: str
    """What went wrong, in words a person can act on."""
    errors: list[FieldError] | msgspec.UnsetType = msgspec.UNSET
    """For a request that does not match the schema: each field at fault."""


ERROR_TEXTS: dict[int, str] = {
    400: "The request does not match the schema: a field or parameter is missing, malformed or unknown "
    "(named in `errors`).",
    401: "No valid credentials: sign in, or send a valid API key.",
    403: "The credentials are valid but do not allow this.",
    404: "No such object in this organisation.",
    409: "The change conflicts with the current state of the object.",
    410: "What the path names existed but is over for good (an expired link).",
    413: "The request body is too large.",
    415: "The request body is not JSON (send `Content-Type: application/json`).",
    416: "The byte range asked for lies outside the file (`Content-Range` gives its size).",
    422: "Well-formed, but against a rule (named in `detail`, and the field in `errors`).",
    429: "Too many requests: wait for the seconds in `Retry-After`.",
    502: "A provider (Meta's Graph API, an SMTP server, a storage service) refused or failed the call made for "
    "this request; `detail` carries its answer.",
    503: "A backing service is unavailable: retry after the seconds in `Retry-After`.",
}


class _ContractPlugin(OpenAPIPlugin):
    """Litestar's OpenAPI plugin, whose served document `_contract` completes, once, when it is
    first asked for (an app made for a test that never reads it pays nothing)."""

    __slots__ = ()

    def provide_openapi_schema(self) -> dict[str, Any]:
        if not self._openapi_schema:
            self._openapi_schema = _contract(self.app, copy.deepcopy(super().provide_openapi_schema()))
        return self._openapi_schema


def install(app: Litestar) -> None:
    """Serve the contract. Litestar makes its OpenAPI plugin itself and offers no hook after the
    document is built, so the plugin becomes the subclass above (same slots, one method more)."""
    app.plugins.get(OpenAPIPlugin).__class__ = _ContractPlugin


def _handlers(app: Litestar) -> Iterator[HTTPRouteHandler]:
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            yield from route.route_handlers


def _body_types(handler: HTTPRouteHandler) -> Iterator[Any]:
    signature = handler.parsed_fn_signature
    if (data := signature.parameters.get("data")) is not None:
        yield data.annotation
    returned = signature.return_type.annotation
    if typing.get_origin(returned) is Response or returned is Response:
        returned = next(iter(typing.get_args(returned)), None)
    if returned is not None and returned is not type(None):
        yield returned


def _contract(app: Litestar, document: dict[str, Any]) -> dict[str, Any]:
    handlers = {h.operation_id: h for h in _handlers(app) if h.include_in_schema and isinstance(h.operation_id, str)}
    types = [Problem, *(t for h in handlers.values() for t in _body_types(h) if _is_msgspec_type(t))]
    types += [h.opt[RAW_BODY][0] for h in handlers.values() if RAW_BODY in h.opt]
    _, schemas = msgspec.json.schema_components(types, ref_template="#/components/schemas/{name}")
    components = document.setdefault("components", {})
    components["schemas"] = {**components.get("schemas", {}), **schemas}
    _pattern_formats(components["schemas"], "body")
    components["securitySchemes"] = SECURITY_SCHEMES
    document.pop("security", None)
    for item in document.get("paths", {}).values():
        for method, operation in item.items():
            handler = handlers.get(operation.get("operationId"))
            if handler is not None:
                _document_operation(method, operation, handler)
            for parameter in operation.get("parameters", []):
                _pattern_formats(parameter.get("schema", {}), "parameter" if parameter["in"] == "query" else "body")
    return document


def _pattern_formats(node: Any, place: str) -> None:
    """Give every string schema with a known format the pattern of that format (see FORMAT_PATTERNS)."""
    if isinstance(node, dict):
        # A property named `format` (a WhatsApp template header's) is a schema here, not a format.
        fmt = node.get("format", "") if isinstance(node.get("format", ""), str) else ""
        known = FORMAT_PATTERNS.get((place, fmt)) or FORMAT_PATTERNS.get(("body", fmt))
        if known is not None and "pattern" not in node:
            node["pattern"] = known
        for value in node.values():
            _pattern_formats(value, place)
    elif isinstance(node, list):
        for item in node:
            _pattern_formats(item, place)


def _is_msgspec_type(annotation: Any) -> bool:
    try:
        msgspec.json.schema(annotation)
    except TypeError:
        return False
    return True


def _document_operation(method: str, operation: dict[str, Any], handler: HTTPRouteHandler) -> None:
    opt = handler.opt
    public = bool(opt.get("public"))
    parameters = operation.get("parameters", [])
    if RAW_BODY in opt:
        body_type, examples = opt[RAW_BODY]
        operation["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": f"#/components/schemas/{body_type.__name__}"},
                    "examples": {name: {"value": value} for name, value in examples.items()},
                }
            },
        }
        if FILE_PART in opt:
            operation["requestBody"]["content"]["multipart/form-data"] = {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary", "description": opt[FILE_PART]}},
                }
            }
    has_body = "requestBody" in operation
    statuses = {503}
    if parameters or has_body:
        statuses |= {400, 422}
    if any(p.get("in") == "path" for p in parameters):
        statuses.add(404)
    if has_body:
        statuses |= {413, 415}
        data = handler.parsed_fn_signature.parameters.get("data")
        if data is not None and data.has_default:
            operation["requestBody"]["required"] = False
    if method in UNSAFE_METHODS:
        statuses.add(409)
    if not public:
        statuses |= {401, 403}
        operation["security"] = SIGNED_IN_SECURITY
    else:
        operation.pop("security", None)
    if opt.get("not_rate_limited") is False:
        statuses.add(429)
    statuses.update(opt.get(ERRORS, ()))
    responses = operation.setdefault("responses", {})
    for status in sorted(statuses):
        existing = responses.get(str(status))
        if existing is not None and PROBLEM_MEDIA_TYPE not in existing.get("content", {}) and status != 400:
            continue  # the operation documents this status itself (health's own 503, say)
        responses[str(status)] = {
            "description": ERROR_TEXTS[status],
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
