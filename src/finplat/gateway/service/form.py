"""Form POSTs standing for other methods, as grpc-gateway's ServeMux takes them (runtime/mux.go).

A POST whose Content-Type is exactly `application/x-www-form-urlencoded` is routed under the
method its `X-HTTP-Method-Override` header names, or, when no POST route has its path but a GET
route does, served by that one (the path-length fallback). Either way net/http's ParseForm
reads it first: the form's values, then the URL query's, become the request's parameters, and
the body is gone, so a route with a body sees none. A form or query string that does not parse
is 400; with the header, even before a route is looked for.
"""

from starlette.types import ASGIApp, Receive, Scope, Send

from finplat.gateway.domain.query import FieldValueError, parse_query_string
from finplat.gateway.service.asgi import header, read_request_body, send_error
from finplat.gateway.service.status_to_http import GatewayError, invalid_argument

# Where a parsed form waits for the route, in the request's scope.
FORM_KEY = "finplat.form"
_FORM_CONTENT_TYPE = b"application/x-www-form-urlencoded"


def is_form_post(scope: Scope) -> bool:
    """grpc-gateway's isPathLengthFallback: a POST with an exact form content type."""
    return scope["method"] == "POST" and header(scope, b"content-type") == _FORM_CONTENT_TYPE


async def read_form(scope: Scope, receive: Receive, limit: int) -> dict[str, list[str]]:
    """net/http's Request.ParseForm: the body's values first, then the URL query's."""
    body = await read_request_body(scope, receive, limit)
    try:
        form = parse_query_string(body)
        for key, values in parse_query_string(scope.get("query_string", b"")).items():
            form.setdefault(key, []).extend(values)
    except FieldValueError as exc:
        raise invalid_argument(str(exc)) from None
    return form


class MethodOverride:
    """ServeMux.ServeHTTP's X-HTTP-Method-Override, applied before any route is matched."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        override = header(scope, b"x-http-method-override") if scope["type"] == "http" else None
        if override and is_form_post(scope):
            try:
                form = await read_form(scope, receive, self.max_body_bytes)
            except GatewayError as error:
                await send_error(send, error)
                return
            # In place, so the metrics middleware around this one sees the method routed.
            scope[FORM_KEY] = form
            scope["method"] = _go_upper(override)
        await self.app(scope, receive, send)


def _go_upper(value: bytes) -> str:
    # Go's strings.ToUpper maps rune by rune (simple case mapping): U+017F (long s) becomes "S",
    # but U+FB06 (the "st" ligature) stays, where Python's full mapping makes it "ST"; invalid
    # UTF-8 becomes U+FFFD.
    text = value.decode("utf-8", "replace")
    return "".join(upper if len(upper := char.upper()) == 1 else char for char in text)
