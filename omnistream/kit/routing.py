"""A repair of Litestar 2's routing, until the project moves to Litestar 3 where it is fixed."""

from __future__ import annotations

from litestar import Litestar
from litestar.routes import HTTPRoute

_DEFAULT_OPTIONS = "HTTPRoute.create_options_handler.<locals>.options_handler"


def repair_options_answers(app: Litestar) -> None:
    """Litestar 2 makes a path's OPTIONS answer when the path's first handler registers and keeps
    it as the route is rebuilt with the others (litestar-org/litestar#4169): its `Allow` header
    named only the methods known by then (`DELETE, OPTIONS` for a path that also has GET and
    PATCH). Each default answer is pointed at its finished route, so it names them all."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or "OPTIONS" not in route.route_handler_map:
            continue
        handler, _ = route.route_handler_map["OPTIONS"]
        answer = handler.fn
        if getattr(answer, "__qualname__", "") != _DEFAULT_OPTIONS:
            continue
        for cell in answer.__closure__ or ():
            if isinstance(cell.cell_contents, HTTPRoute):
                cell.cell_contents = route
