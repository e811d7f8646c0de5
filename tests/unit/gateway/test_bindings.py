"""Routes come from the `google.api.http` annotations, validated as protoc-gen-grpc-gateway does."""

import itertools
import logging
from typing import Any

import pytest
import yaml
from google.api import annotations_pb2, http_pb2  # type: ignore[import-untyped]
from google.protobuf import descriptor, descriptor_pb2, descriptor_pool, json_format
from starlette.routing import Match

from finplat.gateway.domain.bindings import BindingError, bindings_of
from finplat.gateway.service.app import create_app
from finplat.gateway.service.external_rules import EXTERNAL_RULES
from finplat.gateway.service.routes import GrpcRoute, grpc_routes
from tests.paths import PROTO_DIR
from tests.unit.gateway.conftest import settings, upstreams_at

_files = itertools.count()
FieldProto = descriptor_pb2.FieldDescriptorProto


def service_with(
    *rules: tuple[str, http_pb2.HttpRule], client_streaming: bool = False
) -> descriptor.ServiceDescriptor:
    """A service built at run time (descriptor_pb2) whose methods carry the given rules."""
    number = next(_files)
    package = f"finplat.gatewaybindings{number}"
    file = descriptor_pb2.FileDescriptorProto(
        name=f"bindings/{number}.proto",
        package=package,
        syntax="proto3",
        dependency=["google/api/annotations.proto"],
    )
    inner = file.message_type.add(name="Inner")
    inner.field.add(
        name="id", number=1, type=FieldProto.TYPE_STRING, label=FieldProto.LABEL_OPTIONAL
    )
    request = file.message_type.add(name="Request")
    request.field.add(
        name="name", number=1, type=FieldProto.TYPE_STRING, label=FieldProto.LABEL_OPTIONAL
    )
    request.field.add(
        name="inner",
        number=2,
        type=FieldProto.TYPE_MESSAGE,
        type_name=f".{package}.Inner",
        label=FieldProto.LABEL_OPTIONAL,
    )
    request.field.add(
        name="tags",
        number=3,
        type=FieldProto.TYPE_MESSAGE,
        type_name=f".{package}.Inner",
        label=FieldProto.LABEL_REPEATED,
    )
    service = file.service.add(name="Svc")
    for name, rule in rules:
        method = service.method.add(
            name=name,
            input_type=f".{package}.Request",
            output_type=f".{package}.Request",
            client_streaming=client_streaming,
        )
        method.options.Extensions[annotations_pb2.http].CopyFrom(rule)
    pool = descriptor_pool.Default()
    pool.AddSerializedFile(file.SerializeToString())
    return pool.FindServiceByName(f"{package}.Svc")


def rule(**fields: Any) -> http_pb2.HttpRule:
    return http_pb2.HttpRule(**fields)


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        pytest.param(
            rule(get="/v1/{missing}"), "no field missing", id="path variable names no field"
        ),
        pytest.param(
            rule(get="/v1/{name.x}"), "name in name.x is not a message", id="path through a scalar"
        ),
        pytest.param(
            rule(get="/v1/{tags.id}"),
            "tags in tags.id is not a message",
            id="path through a repeated field",
        ),
        pytest.param(
            rule(get="/v1/{inner}"),
            "path variable inner is a message",
            id="path variable is a message",
        ),
        pytest.param(
            rule(post="/v1/x", body="nope"), "body field 'nope'", id="body names no field"
        ),
        pytest.param(
            rule(get="/v1/x", response_body="nope"),
            "response_body 'nope'",
            id="response_body names no field",
        ),
        pytest.param(rule(get="v1/x"), "starts with '/'", id="template without leading slash"),
        pytest.param(rule(body="*"), "no HTTP method and path", id="rule without a pattern"),
    ],
)
def test_annotations_grpc_gateway_would_reject_fail_at_start_up(
    bad: http_pb2.HttpRule, error: str
) -> None:
    with pytest.raises(BindingError, match=error):
        bindings_of([service_with(("Method", bad))])


def test_every_rule_and_additional_binding_becomes_a_binding() -> None:
    main = rule(get="/v1/{name}", additional_bindings=[rule(post="/v1/{inner.id}:do", body="*")])
    custom = rule(custom=http_pb2.CustomHttpPattern(kind="HEAD", path="/v1/head"))

    found = bindings_of([service_with(("Get", main), ("Head", custom))])

    assert [(b.http_method, b.pattern.template, b.body, b.operation_id) for b in found] == [
        ("GET", "/v1/{name}", "", "Svc_Get"),
        ("POST", "/v1/{inner.id}:do", "*", "Svc_Get2"),
        ("HEAD", "/v1/head", "", "Svc_Head"),
    ]


def test_client_streaming_methods_are_skipped_loudly(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        found = bindings_of(
            [service_with(("Upload", rule(post="/v1/up", body="*")), client_streaming=True)]
        )

    assert found == []
    assert "skipping client-streaming method" in caplog.text


def test_a_new_annotated_rpc_gets_a_route_with_no_gateway_code() -> None:
    added = service_with(("Brand", rule(get="/v1/brand/{name}")))

    app = create_app(settings(), upstreams=upstreams_at("127.0.0.1:1", added))

    routes = [(r.binding.rpc_path, r.path) for r in app.routes if isinstance(r, GrpcRoute)]
    assert (f"/{added.full_name}/Brand", "/v1/brand/{name}") in routes
    assert len(routes) == 27 + 1  # the product protos' bindings, and the new one


def test_later_registered_patterns_win_as_in_grpc_gateways_serve_mux() -> None:
    # grpc-gateway's ServeMux.Handle prepends, so the last registered handler is tried first.
    bindings = bindings_of(
        [service_with(("Special", rule(get="/v1/special")), ("Any", rule(get="/v1/{name}")))]
    )
    routes = grpc_routes(bindings, forwarder=None)  # type: ignore[arg-type]
    scope = {"type": "http", "method": "GET", "path": "/v1/special", "root_path": ""}

    first = next(r for r in routes if r.matches(scope)[0] is Match.FULL)

    assert first.binding.method.name == "Any"


@pytest.mark.parametrize(
    ("bound", "reads_query"),
    [
        pytest.param(rule(get="/v1/x"), True, id="nothing bound"),
        pytest.param(rule(get="/v1/{name}"), True, id="fields left over"),
        pytest.param(rule(post="/v1/x", body="*"), False, id="body star"),
        pytest.param(
            rule(post="/v1/{name}", body="inner"), True, id="path and body leave tags over"
        ),
        pytest.param(
            rule(post="/v1/{inner.id}/{name}", body="tags"),
            True,
            id="a nested variable leaves its top-level field over",
        ),
    ],
)
def test_query_string_is_read_only_when_a_top_level_field_is_left_for_it(
    bound: http_pb2.HttpRule, reads_query: bool
) -> None:
    # protoc-gen-grpc-gateway's HasQueryParam: top-level fields minus the body's and the path
    # variables' (a nested `{inner.id}` removes nothing).
    (binding,) = bindings_of([service_with(("Method", bound))])

    assert binding.reads_query is reads_query


def test_query_string_is_not_read_when_path_variables_bind_every_field(
    thing_service: descriptor.ServiceDescriptor,
) -> None:
    found = {b.method.name: b.reads_query for b in bindings_of([thing_service])}

    assert found["Sleep"] is False  # /v1/sleep/{millis}: SleepRequest has only millis
    assert found["Tags"] is False  # /v1/tags/{tags}
    assert found["Fail"] is True  # /v1/fail/{code} leaves message and with_details


def test_the_external_rules_are_those_grpc_gateway_reads_from_its_yaml() -> None:
    config = yaml.safe_load((PROTO_DIR / "grpc-gateway.yaml").read_text())

    from_yaml: dict[str, list[dict[str, str]]] = {}
    for rule in config["http"]["rules"]:
        selector = rule.pop("selector")
        from_yaml.setdefault(selector, []).append(rule)
    in_code = {
        name: [json_format.MessageToDict(rule) for rule in rules]
        for name, rules in EXTERNAL_RULES.items()
    }
    assert config["type"] == "google.api.Service"
    assert from_yaml == in_code
