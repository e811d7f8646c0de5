"""HTTP bindings read from the `google.api.http` annotations of service descriptors.

One `Binding` per rule and per `additional_bindings` entry, validated the way
protoc-gen-grpc-gateway validates them at generation time: the body and response_body name
fields that exist, path variables name non-repeated fields that exist. Adding an annotated RPC
to a proto adds its route, with no gateway code.
"""

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

from google.api import annotations_pb2, http_pb2  # type: ignore[import-untyped]
from google.protobuf import descriptor, message, message_factory

from finplat.gateway.domain.pattern import PathPattern, PatternError, parse_template

logger = logging.getLogger(__name__)

FieldDescriptor = descriptor.FieldDescriptor


class BindingError(ValueError):
    """An http annotation the gateway cannot serve; raised at start-up, never per request."""


@dataclass(frozen=True)
class Binding:
    service: descriptor.ServiceDescriptor
    method: descriptor.MethodDescriptor
    http_method: str
    pattern: PathPattern
    # "" (no body), "*" (the whole request) or a top-level field name.
    body: str
    response_body: str
    # Position among the method's bindings: 0 for the rule, 1.. for additional_bindings.
    index: int

    @property
    def rpc_path(self) -> str:
        return f"/{self.service.full_name}/{self.method.name}"

    @property
    def server_streaming(self) -> bool:
        return bool(self.method.server_streaming)

    @cached_property
    def request_class(self) -> type[message.Message]:
        return message_factory.GetMessageClass(self.method.input_type)

    @cached_property
    def response_class(self) -> type[message.Message]:
        return message_factory.GetMessageClass(self.method.output_type)

    @cached_property
    def body_field(self) -> FieldDescriptor | None:
        if self.body in ("", "*"):
            return None
        return self.method.input_type.fields_by_name[self.body]

    @cached_property
    def response_field(self) -> FieldDescriptor | None:
        if not self.response_body:
            return None
        return self.method.output_type.fields_by_name[self.response_body]

    @cached_property
    def bound_paths(self) -> tuple[tuple[str, ...], ...]:
        """Field paths the query string may not set: path variables and the body field."""
        paths = [v.field_path for v in self.pattern.variables]
        if self.body_field is not None:
            paths.append((self.body,))
        return tuple(paths)

    @cached_property
    def reads_query(self) -> bool:
        """grpc-gateway's HasQueryParam: whether a top-level field is left for the query string.

        When none is, the generated handler never parses the query string, so even a malformed
        one is no error.
        """
        if self.body == "*":
            return False
        bound = {path[0] for path in self.bound_paths if len(path) == 1}
        return any(field.name not in bound for field in self.method.input_type.fields)

    @property
    def operation_id(self) -> str:
        # protoc-gen-openapiv2 numbers additional bindings from 2.
        suffix = str(self.index + 1) if self.index else ""
        return f"{self.service.name}_{self.method.name}{suffix}"


def bindings_of(
    services: Iterable[descriptor.ServiceDescriptor],
    external_rules: Mapping[str, Sequence[http_pb2.HttpRule]] | None = None,
) -> list[Binding]:
    """Every binding of every bound method, in declaration order.

    ``external_rules`` (by the method's full name) bind methods of protos we do not own, as
    grpc-gateway's ``grpc_api_configuration`` does: a method's external rules come first,
    then its own annotation with its additional bindings.
    """
    external = external_rules or {}
    found: list[Binding] = []
    for service in services:
        for method in service.methods:
            options = method.GetOptions()
            rules = list(external.get(method.full_name, ()))
            if options.HasExtension(annotations_pb2.http):
                rule = options.Extensions[annotations_pb2.http]
                rules += [rule, *rule.additional_bindings]
            if not rules:
                continue
            if method.client_streaming:
                # grpc-gateway would read newline-delimited request messages; none of our
                # RPCs stream from the client, so such a method is skipped, loudly.
                logger.warning("skipping client-streaming method %s", method.full_name)
                continue
            for index, each in enumerate(rules):
                found.append(_binding(service, method, each, index))
    return found


def _binding(
    service: descriptor.ServiceDescriptor,
    method: descriptor.MethodDescriptor,
    rule: http_pb2.HttpRule,
    index: int,
) -> Binding:
    kind = rule.WhichOneof("pattern")
    where = f"{method.full_name} binding {index}"
    if kind is None:
        raise BindingError(f"{where}: no HTTP method and path")
    if kind == "custom":
        http_method, template = rule.custom.kind.upper(), rule.custom.path
    else:
        http_method, template = kind.upper(), getattr(rule, kind)
    try:
        pattern = parse_template(template)
    except PatternError as exc:
        raise BindingError(f"{where}: {exc}") from exc
    request, response = method.input_type, method.output_type
    for variable in pattern.variables:
        field = _resolve(request, variable.field_path, where)
        if field.message_type is not None and not _is_scalar_message(field):
            raise BindingError(f"{where}: path variable {variable.name} is a message")
    if rule.body not in ("", "*") and rule.body not in request.fields_by_name:
        raise BindingError(f"{where}: body field {rule.body!r} is not in {request.full_name}")
    if rule.response_body and rule.response_body not in response.fields_by_name:
        raise BindingError(
            f"{where}: response_body {rule.response_body!r} is not in {response.full_name}"
        )
    return Binding(service, method, http_method, pattern, rule.body, rule.response_body, index)


def _resolve(msg: descriptor.Descriptor, path: tuple[str, ...], where: str) -> FieldDescriptor:
    field: FieldDescriptor | None = None
    for depth, name in enumerate(path):
        field = msg.fields_by_name.get(name)
        if field is None:
            raise BindingError(f"{where}: no field {'.'.join(path)} in {msg.full_name}")
        if depth < len(path) - 1:
            if field.message_type is None or field.is_repeated:
                raise BindingError(f"{where}: {name} in {'.'.join(path)} is not a message")
            msg = field.message_type
    assert field is not None
    return field


def _is_scalar_message(field: FieldDescriptor) -> bool:
    # Well-known types with a scalar JSON form may be bound to a path segment.
    name = field.message_type.full_name if field.message_type is not None else ""
    return name.startswith("google.protobuf.") and name.rsplit(".", 1)[1] in {
        "Timestamp",
        "Duration",
        "FieldMask",
        "DoubleValue",
        "FloatValue",
        "Int64Value",
        "Int32Value",
        "UInt64Value",
        "UInt32Value",
        "BoolValue",
        "StringValue",
        "BytesValue",
    }
