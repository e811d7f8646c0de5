"""The gateway's own pages: health of every upstream, the OpenAPI document, docs and metrics."""

import re

import httpx
import pytest
from google.api import annotations_pb2, http_pb2  # type: ignore[import-untyped]
from google.protobuf.descriptor import FileDescriptor

from finance.backtest.v1 import backtest_service_pb2
from finance.market.v1 import price_service_pb2

pytestmark = pytest.mark.integration

_VERBS = ("get", "put", "post", "delete", "patch")


def _contract_routes(*files: FileDescriptor) -> set[tuple[str, str]]:
    """(method, path) of every google.api.http binding in the contract, as OpenAPI writes them."""
    routes = set()
    for file in files:
        for service in file.services_by_name.values():
            for method in service.methods:
                rule = method.GetOptions().Extensions[annotations_pb2.http]
                rules: list[http_pb2.HttpRule] = [rule, *rule.additional_bindings]
                for binding in rules:
                    verb = binding.WhichOneof("pattern")
                    if verb in _VERBS:
                        # OpenAPI names a variable, not its pattern: {name=operations/*} is {name}.
                        path = re.sub(r"\{([\w.]+)=[^}]*\}", r"{\1}", getattr(binding, verb))
                        routes.add((verb, path))
    return routes


def test_health_reports_every_upstream_serving(gateway: httpx.Client) -> None:
    response = gateway.get("/health")

    assert response.status_code == httpx.codes.OK
    body = response.json()
    assert body["status"] == "SERVING"
    assert set(body["upstreams"]) == {"price", "backtest"}
    for upstream in body["upstreams"].values():
        assert upstream["status"] == "SERVING"
        assert set(upstream["services"].values()) == {"SERVING"}


def test_openapi_lists_every_route_of_the_contract(gateway: httpx.Client) -> None:
    expected = _contract_routes(price_service_pb2.DESCRIPTOR, backtest_service_pb2.DESCRIPTOR)

    response = gateway.get("/openapi.json")

    assert response.status_code == httpx.codes.OK
    listed = {(verb, path) for path, ops in response.json()["paths"].items() for verb in ops}
    assert expected <= listed
    assert ("get", "/api/prices/{symbol}") in listed  # the contract was read at all


def test_docs_page_serves_swagger_ui(gateway: httpx.Client) -> None:
    response = gateway.get("/docs")

    assert response.status_code == httpx.codes.OK
    assert response.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in response.text


def test_metrics_serve_prometheus_text(gateway: httpx.Client) -> None:
    gateway.get("/health")  # at least one counted request

    response = gateway.get("/metrics")

    assert response.status_code == httpx.codes.OK
    assert response.headers["content-type"].startswith("text/plain")
    assert "# TYPE finplat_gateway_http_requests_total counter" in response.text
    assert 'route="/health"' in response.text
