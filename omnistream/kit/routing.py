"""A repair of Litestar 2's routing, until the project moves to Litestar 3 where it is fixed."""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar._asgi.routing_trie import traversal
from litestar._asgi.routing_trie.types import PathParameterSentinel
from litestar.exceptions import NotFoundException
from litestar.routes import HTTPRoute
from litestar.utils import normalize_path

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


def _traverse_with_backtracking(root_node: Any, path: str) -> tuple[Any, list[str], str]:
    components = [p for p in path.split("/") if p]
    params: list[str] = []
    node = _walk(root_node, components, 0, params)
    if node is None:
        raise NotFoundException()
    return node, params, path


def _walk(node: Any, components: list[str], i: int, params: list[str]) -> Any:
    if i == len(components):
        return node if node.asgi_handlers else None
    component = components[i]
    if component in node.child_keys:
        found = _walk(node.children[component], components, i + 1, params)
        if found is not None:
            return found
    if not node.is_path_param_node:
        return None
    child = node.children[PathParameterSentinel]
    if child.is_path_type:
        params.append(normalize_path("/".join(components[i:])))
        if child.asgi_handlers:
            return child
        params.pop()
        return None
    params.append(component)
    found = _walk(child, components, i + 1, params)
    if found is None:
        params.pop()
    return found


def repair_static_dead_ends() -> None:
    """Litestar 2's router follows a static segment without ever falling back to a path parameter
    beside it: with `/api/integrations/{channel}` and `/api/integrations/messenger/pages/{page_id}`,
    `/api/integrations/messenger` walked into the static `messenger` node, found no handler there
    and answered 404. Traversal here backtracks to the parameter when the static branch dead-ends;
    a path that matched before matches the same way (the static branch is still tried first)."""
    traversal.traverse_route_map = _traverse_with_backtracking  # type: ignore[assignment]
