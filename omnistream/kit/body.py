"""Request bodies decoded strictly, straight into the type the handler declares."""

from __future__ import annotations

from functools import cache
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import HTTPException, ValidationException
from litestar.handlers import BaseRouteHandler
from litestar.utils.empty import value_or_default

# What a multipart body carries besides an uploaded file: boundaries and the part's headers (a
# route's body limit is the file's limit plus this).
FORM_OVERHEAD_BYTES = 16 * 1024


@cache
def _body_type(handler: BaseRouteHandler) -> Any:
    data = handler.parsed_fn_signature.parameters.get("data")
    return None if data is None else data.annotation


def _error(exc: msgspec.ValidationError) -> dict[str, str]:
    """msgspec's `Expected `int`, got `str` - at `$.rules[0].minutes`` as Litestar reports a body
    error: the top-level field as the key ("data" for the body itself), the position in the message."""
    message, _, at = str(exc).partition(" - at `$")
    path = at.rstrip("`")
    field = path.lstrip(".").split(".")[0].split("[")[0]
    if path and path.lstrip(".") != field:
        message = f"{message} (at {path.lstrip('.')})"
    return {"message": message, "key": field or "data", "source": "body"}


def _decode(body: bytes, target: Any) -> Any:
    try:
        return msgspec.json.decode(body, type=target, strict=True)
    except msgspec.ValidationError as exc:
        # `int | null` says the same of a float where an optional integer belongs.
        if not (str(exc).startswith("Expected `int") and "got `float`" in str(exc)):
            raise
    # JSON has one number type: 2.0 is the integer 2 (JSON Schema says so too), which msgspec's
    # strict decoding refuses. Such a body is decoded again with whole floats read as integers.
    return msgspec.convert(_whole_floats_as_ints(msgspec.json.decode(body)), target, strict=True)


def _whole_floats_as_ints(value: Any) -> Any:
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, list):
        return [_whole_floats_as_ints(item) for item in value]
    if isinstance(value, dict):
        return {key: _whole_floats_as_ints(item) for key, item in value.items()}
    return value


def is_json(media_type: str) -> bool:
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


class StrictBodyRequest(Request[Any, Any, Any]):
    """Litestar decodes a JSON body to plain values and then converts them leniently (strict=False,
    which it needs for query strings): "60" became 60, "NULL" became null and 1 became true. Here
    the body is decoded once, strictly, into the handler's declared type; what comes out passes
    Litestar's own conversion unchanged. Bad input fails as Litestar's validation errors do."""

    async def json(self) -> Any:
        target = _body_type(self.route_handler)
        if target is None or value_or_default(self._connection_state.json, None) is not None:
            return await super().json()
        body = await self.body()
        if body and not is_json(self.content_type[0]):
            # A form or text/plain body is what a page on another site can send without asking:
            # besides being the wrong type, it is how cross-site requests arrive.
            raise HTTPException(
                status_code=415,
                detail=f"the body must be JSON, sent as application/json, not {self.content_type[0] or 'untyped'}",
            )
        try:
            value = _decode(body or b"null", target)
        except msgspec.ValidationError as exc:
            raise ValidationException(
                detail=f"Validation failed for {self.method} {self.url.path}", extra=[_error(exc)]
            ) from exc
        except msgspec.DecodeError:
            return await super().json()  # Litestar's own words for a body that is not JSON
        self._json = self._connection_state.json = value
        return value


async def strict_json(request: Request[Any, Any, Any], target: Any) -> Any:
    """A JSON body read by a handler that takes other media types too, decoded strictly into
    `target`; it fails as a declared body does (415 for another type, 400 naming the field)."""
    body = await request.body()
    if not is_json(request.content_type[0] or "application/json"):
        raise HTTPException(
            status_code=415, detail=f"the body must be JSON, sent as application/json, not {request.content_type[0]}"
        )
    try:
        return _decode(body or b"null", target)
    except msgspec.ValidationError as exc:
        raise ValidationException(
            detail=f"Validation failed for {request.method} {request.url.path}", extra=[_error(exc)]
        ) from exc
    except msgspec.DecodeError as exc:
        raise ValidationException(
            detail=f"Validation failed for {request.method} {request.url.path}",
            extra=[{"message": f"the body is not JSON ({exc})", "key": "data", "source": "body"}],
        ) from exc
