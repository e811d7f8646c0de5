"""OpenAPI 3.0 document of every HTTP binding, built from the same descriptors as the routes.

Parameters follow the gateway's mapping: path variables, then (unless `body: "*"`) every other
field reachable through singular messages as a dotted query parameter; request bodies are the
whole message or the body field; responses are the output (or `response_body`) and, for every
other status, a google.rpc.Status.
"""

import logging
import re
from collections.abc import Sequence
from typing import Any

from google.protobuf import descriptor

from finplat.gateway.domain.bindings import Binding
from finplat.gateway.domain.comments import comment
from finplat.gateway.domain.pattern import PathPattern, SegmentKind, Variable
from finplat.gateway.domain.schema import Schema, SchemaRegistry, ref

logger = logging.getLogger(__name__)

FieldDescriptor = descriptor.FieldDescriptor

_SCALAR_WELL_KNOWN = re.compile(
    r"google\.protobuf\.(Timestamp|Duration|FieldMask|(Double|Float|U?Int(32|64)|Bool|String|Bytes)Value)"
)
_ERROR_RESPONSE = {
    "description": "An error: the google.rpc.Status of the failed call.",
    "content": {"application/json": {"schema": ref("rpcStatus")}},
}


def openapi_document(
    bindings: Sequence[Binding], *, title: str, version: str, description: str, bearer: bool
) -> dict[str, Any]:
    registry = SchemaRegistry()
    paths: dict[str, dict[str, Any]] = {}
    for binding in bindings:
        path = openapi_path(binding.pattern)
        operations = paths.setdefault(path, {})
        method = binding.http_method.lower()
        if method in operations:
            logger.warning("two bindings share %s %s; keeping the first", method, path)
            continue
        operations[method] = _operation(binding, registry)
    document: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {"title": title, "version": version, "description": description},
        "paths": paths,
        "components": {"schemas": registry.components},
    }
    if bearer:
        document["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        document["security"] = [{"bearer": []}]
    return document


def openapi_path(pattern: PathPattern) -> str:
    """`/v1/{name=things/*}:undelete` as OpenAPI spells it: `/v1/{name}:undelete`."""
    parts: list[str] = []
    index = 0
    segments = pattern.segments
    for variable in sorted(pattern.variables, key=lambda v: v.start):
        parts.extend(_literal(s.kind, s.literal) for s in segments[index : variable.start])
        parts.append("{" + variable.name + "}")
        index = variable.end
    parts.extend(_literal(s.kind, s.literal) for s in segments[index:])
    path = "/" + "/".join(parts)
    return f"{path}:{pattern.verb}" if pattern.verb else path


def _literal(kind: SegmentKind, literal: str) -> str:
    return literal if kind is SegmentKind.LITERAL else kind.value


def _operation(binding: Binding, registry: SchemaRegistry) -> dict[str, Any]:
    method = binding.method
    parameters = [_path_parameter(binding, v, registry) for v in binding.pattern.variables]
    if binding.body != "*":
        bound = {v.field_path for v in binding.pattern.variables}
        if binding.body:
            bound.add((binding.body,))
        parameters += _query_parameters(method.input_type, (), (), bound, registry)
    operation: dict[str, Any] = {
        "operationId": binding.operation_id,
        "tags": [binding.service.name],
        "description": comment(method.full_name),
        "parameters": parameters,
        "responses": {"200": _success(binding, registry), "default": _ERROR_RESPONSE},
    }
    if binding.body:
        operation["requestBody"] = {
            "content": {"application/json": {"schema": _body_schema(binding, registry)}},
        }
    return operation


def _path_parameter(binding: Binding, variable: Variable, registry: SchemaRegistry) -> Schema:
    field = _field_at(binding.method.input_type, variable.field_path)
    schema = registry.field(field, nullable=False)
    schema.pop("description", None)
    segments = binding.pattern.segments[variable.start : variable.end]
    if len(segments) > 1 or segments[0].kind is not SegmentKind.WILDCARD:
        # `{name=things/*}`: the value must have that shape, slashes included.
        schema["pattern"] = (
            "^" + "/".join(_segment_regex(s.kind, s.literal) for s in segments) + "$"
        )
    return {
        "name": variable.name,
        "in": "path",
        "required": True,
        "schema": schema,
        "description": comment(field.full_name),
    }


def _segment_regex(kind: SegmentKind, literal: str) -> str:
    if kind is SegmentKind.LITERAL:
        return re.escape(literal)
    return "[^/]+" if kind is SegmentKind.WILDCARD else ".*"


def _query_parameters(
    msg: descriptor.Descriptor,
    prefix: tuple[str, ...],
    json_prefix: tuple[str, ...],
    bound: set[tuple[str, ...]],
    registry: SchemaRegistry,
    seen: tuple[str, ...] = (),
) -> list[Schema]:
    parameters: list[Schema] = []
    for field in msg.fields:
        path = (*prefix, field.name)
        if path in bound:
            continue
        sub = field.message_type
        if sub is not None and not _SCALAR_WELL_KNOWN.fullmatch(sub.full_name):
            # Only singular messages can be walked into (grpc-gateway's "invalid path"
            # otherwise); a message already on the path would recurse for ever.
            if field.is_repeated or sub.full_name in seen:
                continue
            parameters += _query_parameters(
                sub, path, (*json_prefix, field.json_name), bound, registry, (*seen, msg.full_name)
            )
            continue
        schema = registry.field(field, nullable=False)
        description = schema.pop("description", "")
        parameter: Schema = {
            "name": ".".join((*json_prefix, field.json_name)),
            "in": "query",
            "required": False,
            "schema": schema,
            "description": description,
        }
        if field.is_repeated:
            parameter.update(style="form", explode=True)
        parameters.append(parameter)
    return parameters


def _body_schema(binding: Binding, registry: SchemaRegistry) -> Schema:
    if binding.body_field is not None:
        return registry.field(binding.body_field, nullable=False)
    request = binding.method.input_type
    top_level_vars = {v.field_path[0] for v in binding.pattern.variables if len(v.field_path) == 1}
    if not top_level_vars:
        return registry.message(request)
    # Path variables win over the body, so the body schema leaves them out.
    return {
        "type": "object",
        "properties": {
            f.json_name: registry.field(f) for f in request.fields if f.name not in top_level_vars
        },
    }


def _success(binding: Binding, registry: SchemaRegistry) -> dict[str, Any]:
    field = binding.response_field
    selected = binding.method.output_type if field is None else field.message_type
    if selected is not None and selected.full_name == "google.api.HttpBody":
        # Sent as it is, with the content type the service chose (grpc-gateway's HttpBody).
        return {
            "description": "The body as the service produced it, in its own content type.",
            "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
        }
    if binding.response_field is not None:
        result = registry.field(binding.response_field, nullable=False)
    else:
        result = registry.message(binding.method.output_type)
    if not binding.server_streaming:
        return {
            "description": "A successful response.",
            "content": {"application/json": {"schema": result}},
        }
    envelope = {
        "type": "object",
        "properties": {"result": result, "error": ref("rpcStatus")},
        "description": (
            "One line per message (newline-delimited JSON): a result, or the error that "
            "ended the stream."
        ),
    }
    return {
        "description": "A stream of results.",
        "content": {
            "application/json": {"schema": envelope},
            "text/event-stream": {"schema": {"type": "string"}},
        },
    }


def _field_at(msg: descriptor.Descriptor, path: tuple[str, ...]) -> FieldDescriptor:
    field = msg.fields_by_name[path[0]]
    for name in path[1:]:
        assert field.message_type is not None
        field = field.message_type.fields_by_name[name]
    return field
