"""One Starlette route per HTTP binding, matching as grpc-gateway's ServeMux matches.

Starlette's own path syntax cannot say `{name=things/*}`, `**` or a custom verb, so each route
matches with the binding's compiled `PathPattern`. Router semantics then give grpc-gateway's:
a full match (path and method) wins; a path matched under another method is a partial match,
answered 501 `Method Not Allowed` (grpc-gateway's routing error handler maps 405 to
Unimplemented), except that a form POST may stand for a GET (path-length fallback); no match
reaches the app's 404 handler, which answers with a NotFound Status.
"""

from collections.abc import Sequence

import grpc
from starlette.routing import BaseRoute, Match
from starlette.types import Receive, Scope, Send

from finplat.gateway.domain.bindings import Binding
from finplat.gateway.domain.pattern import split_path, split_verb
from finplat.gateway.service.asgi import send_error
from finplat.gateway.service.form import is_form_post
from finplat.gateway.service.forward import Forwarder
from finplat.gateway.service.status_to_http import GatewayError

ROUTE_KEY = "finplat.route"
_COMPONENTS_KEY = "finplat.path_components"
_PARAMS_KEY = "finplat.path_params"


class GrpcRoute(BaseRoute):
    def __init__(self, binding: Binding, forwarder: Forwarder) -> None:
        self.binding = binding
        self.forwarder = forwarder
        self.path = binding.pattern.template
        self.methods = {binding.http_method}
        self.name = binding.operation_id

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http":
            return Match.NONE, {}
        components = scope.get(_COMPONENTS_KEY)
        if components is None:
            # Split once per request, not once per route.
            path = scope["path"]
            root = scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root) :]
            components = split_path(path) if path.startswith("/") else None
            scope[_COMPONENTS_KEY] = components
        if components is None:
            return Match.NONE, {}
        pattern = self.binding.pattern
        parts, verb = split_verb(components, pattern.verb)
        params = pattern.match(parts, verb)
        if params is None:
            return Match.NONE, {}
        child = {_PARAMS_KEY: params, ROUTE_KEY: pattern.template}
        if scope["method"] == self.binding.http_method:
            return Match.FULL, child
        return Match.PARTIAL, child

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        params: dict[str, str] = scope[_PARAMS_KEY]
        if scope["method"] == self.binding.http_method:
            await self.forwarder(self.binding, params, scope, receive, send)
        elif self.binding.http_method == "GET" and is_form_post(scope):
            await self.forwarder(self.binding, params, scope, receive, send, form_fallback=True)
        else:
            await send_error(
                send, GatewayError(grpc.StatusCode.UNIMPLEMENTED, "Method Not Allowed")
            )

    def __repr__(self) -> str:
        return f"GrpcRoute({self.binding.http_method} {self.path} -> {self.binding.rpc_path})"


def grpc_routes(bindings: Sequence[Binding], forwarder: Forwarder) -> list[GrpcRoute]:
    """Routes in grpc-gateway's precedence: its ServeMux tries the last registered handler
    first, and generated code registers methods (and additional bindings) in declaration order."""
    return [GrpcRoute(binding, forwarder) for binding in reversed(bindings)]
