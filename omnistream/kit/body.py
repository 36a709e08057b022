"""Request bodies decoded strictly, straight into the type the handler declares."""

from __future__ import annotations

from functools import cache
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import ValidationException
from litestar.handlers import BaseRouteHandler
from litestar.utils.empty import value_or_default


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
        try:
            value = msgspec.json.decode(body or b"null", type=target, strict=True)
        except msgspec.ValidationError as exc:
            raise ValidationException(
                detail=f"Validation failed for {self.method} {self.url.path}", extra=[_error(exc)]
            ) from exc
        except msgspec.DecodeError:
            return await super().json()  # Litestar's own words for a body that is not JSON
        self._json = self._connection_state.json = value
        return value
