"""One HTTP request to one gRPC call and back, in the order grpc-gateway's generated handlers
use: headers (AnnotateContext) first, then the body, then path variables (they win over the
body), then the query string."""

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
from finplat.gateway.domain.request_body import BodyError, parse_body
from finplat.gateway.service.asgi import (
    bearer_token_ok,
    read_request_body,
    send_body,
    send_error,
    send_json,
)
from finplat.gateway.service.deadline import Deadline, timeout_left, upstream_failure
from finplat.gateway.service.form import FORM_KEY, read_form
from finplat.gateway.service.headers import Metadata, incoming_metadata, outgoing_headers
from finplat.gateway.service.status_to_http import GatewayError, from_rpc_error, invalid_argument
from finplat.gateway.service.streaming import forward_stream

logger = logging.getLogger(__name__)


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
    deadline: Deadline | None


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
                        call.request, timeout=timeout_left(call.deadline), metadata=call.metadata
                    ),
                    binding,
                    scope,
                    receive,
                    send,
                    keepalive_s=self.options.sse_keepalive_s,
                    deadline=call.deadline,
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
        form: dict[str, list[str]] | None = scope.get(FORM_KEY)
        if form is None and form_fallback:
            form = await read_form(scope, receive, self._limit)
        client = scope.get("client")
        metadata, timeout = incoming_metadata(scope["headers"], client[0] if client else None)
        deadline = self._deadline(binding, timeout)
        request = binding.request_class()
        # A parsed form has consumed the body: the JSON decoder would meet io.EOF.
        if binding.body and form is None:
            raw_body = await read_request_body(scope, receive, self._limit)
            try:
                parse_body(raw_body, request, binding.body_field)
            except BodyError as exc:
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
        if binding.reads_query:
            try:
                # A parsed form holds the URL query's values too, after its own (Go's r.Form).
                query = form if form is not None else _query_string(scope)
                populate_query(request, query, binding.bound_paths)
            except FieldValueError as exc:
                raise invalid_argument(str(exc)) from None
        return CallContext(request, metadata, deadline)

    def _deadline(self, binding: Binding, timeout: float | None) -> Deadline | None:
        if timeout is None and not binding.server_streaming:
            timeout = self.options.default_deadline_s or None
        elif timeout == 0:
            timeout = None  # "0S" means no deadline in grpc-gateway
        # A negative timeout is a deadline already passed, as context.WithTimeout makes it.
        return None if timeout is None else Deadline.after(timeout)

    @property
    def _limit(self) -> int:
        return self.options.max_request_bytes

    async def _unary(self, binding: Binding, call: CallContext, send: Send) -> None:
        rpc = self.pool.unary(binding.method)(
            call.request, timeout=timeout_left(call.deadline), metadata=call.metadata
        )
        try:
            response = await rpc
            initial = await rpc.initial_metadata()
            trailing = await rpc.trailing_metadata()
        except grpc.aio.AioRpcError as exc:
            raise upstream_failure(from_rpc_error(exc), call.deadline) from None
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


def _query_string(scope: Scope) -> dict[str, list[str]]:
    return parse_query_string(scope.get("query_string", b""))


def _path_values(binding: Binding, path: tuple[str, ...], value: str) -> list[str]:
    # grpc-gateway's generated code reads a repeated top-level path variable as a
    # comma-separated list (runtime.StringSlice and friends).
    if len(path) == 1:
        field = binding.method.input_type.fields_by_name[path[0]]
        if field.is_repeated:
            return value.split(",")
    return [value]
