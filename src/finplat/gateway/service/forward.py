"""One HTTP request to one gRPC call and back, in the order grpc-gateway's generated handlers
use: body first, then path variables (they win over the body), then the query string."""

import logging
from dataclasses import dataclass

import grpc
from google.api import httpbody_pb2  # type: ignore[import-untyped]
from google.protobuf import message
from starlette.types import Receive, Scope, Send

from finplat.gateway.adapters.upstream import UpstreamPool
from finplat.gateway.domain import marshal
from finplat.gateway.domain.bindings import Binding
from finplat.gateway.domain.query import (
    FieldValueError,
    parse_query_string,
    populate_field,
    populate_query,
)
from finplat.gateway.service.asgi import (
    bearer_token_ok,
    header,
    read_body,
    send_body,
    send_error,
    send_json,
)
from finplat.gateway.service.headers import Metadata, incoming_metadata, outgoing_headers
from finplat.gateway.service.status_to_http import GatewayError, from_rpc_error, invalid_argument
from finplat.gateway.service.streaming import forward_stream

logger = logging.getLogger(__name__)

_FORM = b"application/x-www-form-urlencoded"


@dataclass(frozen=True)
class ForwardOptions:
    max_request_bytes: int
    default_deadline_s: float
    api_token: str | None
    sse_keepalive_s: float


@dataclass(frozen=True)
class CallContext:
    request: message.Message
    metadata: Metadata
    timeout: float | None


class Forwarder:
    """Turns matched requests into upstream calls; shared by every mapped route."""

    def __init__(self, pool: UpstreamPool, options: ForwardOptions) -> None:
        self.pool = pool
        self.options = options

    async def __call__(
        self,
        binding: Binding,
        params: dict[str, str],
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        form_fallback: bool = False,
    ) -> None:
        try:
            token = self.options.api_token
            if token is not None and not bearer_token_ok(scope, token):
                raise GatewayError(
                    grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token"
                )
            call = await self._prepare(binding, params, scope, receive, form_fallback)
            if binding.server_streaming:
                await forward_stream(
                    self.pool.stream(binding.method)(
                        call.request, timeout=call.timeout, metadata=call.metadata
                    ),
                    binding,
                    scope,
                    receive,
                    send,
                    keepalive_s=self.options.sse_keepalive_s,
                )
            else:
                await self._unary(binding, call, send)
        except GatewayError as error:
            await send_error(send, error)

    async def _prepare(
        self,
        binding: Binding,
        params: dict[str, str],
        scope: Scope,
        receive: Receive,
        form_fallback: bool,
    ) -> CallContext:
        request = binding.request_class()
        raw_body = b""
        if binding.body or form_fallback:
            length = header(scope, b"content-length")
            too_long = length is not None and length.isdigit() and int(length) > self._limit
            body = None if too_long else await read_body(receive, self._limit)
            if body is None:
                raise GatewayError(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"request body larger than {self._limit} bytes",
                    http_status=413,
                )
            raw_body = body
        if binding.body:
            try:
                marshal.parse_body(raw_body, request, binding.body_field)
            except marshal.BodyError as exc:
                raise invalid_argument(str(exc)) from None
        for variable in binding.pattern.variables:
            value = params[variable.name]
            try:
                populate_field(
                    request, variable.field_path, _path_values(binding, variable.field_path, value)
                )
            except FieldValueError as exc:
                raise invalid_argument(
                    f"type mismatch, parameter: {variable.name}, error: {exc}"
                ) from None
        # With `body: "*"` every field comes from the body: the query string is not read.
        if binding.body != "*":
            try:
                query = parse_query_string(scope.get("query_string", b""))
                if form_fallback and raw_body:
                    # grpc-gateway's path-length fallback: a form POST stands for a long GET.
                    for key, values in parse_query_string(raw_body).items():
                        query.setdefault(key, []).extend(values)
                populate_query(request, query, binding.bound_paths)
            except FieldValueError as exc:
                raise invalid_argument(str(exc)) from None
        client = scope.get("client")
        metadata, timeout = incoming_metadata(scope["headers"], client[0] if client else None)
        if timeout is None and not binding.server_streaming:
            timeout = self.options.default_deadline_s or None
        elif timeout is not None:
            # "0S" means no deadline in grpc-gateway; a negative one has already expired.
            timeout = None if timeout == 0 else max(timeout, 0.0)
        return CallContext(request, metadata, timeout)

    @property
    def _limit(self) -> int:
        return self.options.max_request_bytes

    async def _unary(self, binding: Binding, call: CallContext, send: Send) -> None:
        rpc = self.pool.unary(binding.method)(
            call.request, timeout=call.timeout, metadata=call.metadata
        )
        try:
            response = await rpc
            initial = await rpc.initial_metadata()
            trailing = await rpc.trailing_metadata()
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from None
        field = binding.response_field
        outgoing = outgoing_headers(initial or (), trailing or ())
        selected = response if field is None else getattr(response, field.name)
        if isinstance(selected, httpbody_pb2.HttpBody):
            # grpc-gateway's HTTPBodyMarshaler: the bytes as they are, with their content type.
            content_type = (b"content-type", selected.content_type.encode())
            await send_body(send, 200, selected.data, content_type, outgoing)
            return
        try:
            value = (
                marshal.to_dict(response) if field is None else marshal.field_value(response, field)
            )
            body = marshal.dumps(value)
        except marshal.MARSHAL_ERRORS as exc:
            logger.exception("cannot marshal %s", binding.method.output_type.full_name)
            raise GatewayError(
                grpc.StatusCode.UNKNOWN, f"failed to marshal response: {exc}"
            ) from None
        await send_json(send, 200, body, outgoing)


def _path_values(binding: Binding, path: tuple[str, ...], value: str) -> list[str]:
    # grpc-gateway's generated code reads a repeated top-level path variable as a
    # comma-separated list (runtime.StringSlice and friends).
    if len(path) == 1:
        field = binding.method.input_type.fields_by_name[path[0]]
        if field.is_repeated:
            return value.split(",")
    return [value]


def is_form_post(scope: Scope) -> bool:
    """grpc-gateway's isPathLengthFallback: a POST with an exact form content type."""
    return scope["method"] == "POST" and header(scope, b"content-type") == _FORM
