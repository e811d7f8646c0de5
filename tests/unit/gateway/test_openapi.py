"""The OpenAPI document: every annotated route, valid OpenAPI 3, schemas and comments."""

from typing import Any

import httpx
import pytest
import schemathesis
from google.protobuf import descriptor

from finplat.gateway.domain.bindings import bindings_of
from finplat.gateway.domain.openapi import openapi_document
from finplat.gateway.service.app import BACKTEST_SERVICE, OPERATIONS_SERVICE, PRICE_SERVICE
from finplat.gateway.service.external_rules import EXTERNAL_RULES

# The product protos' annotations, written out: the document must list exactly these.
PRODUCT_ROUTES = {
    ("/api/prices/{symbol}", "get"): "PriceService_GetPrice",
    ("/api/prices", "get"): "PriceService_ListPrices",
    ("/api/candles/{symbol}/{interval}", "get"): "PriceService_GetCandles",
    ("/api/prices:stream", "get"): "PriceService_StreamPrices",
    ("/stats", "get"): "BacktestService_GetStats",
    ("/api/strategies", "get"): "BacktestService_ListStrategies",
    ("/api/backtests", "post"): "BacktestService_RunBacktest",
    ("/api/backtests/{id}", "get"): "BacktestService_GetBacktest",
    ("/api/backtests/{id}/chart", "get"): "BacktestService_GetBacktestChart",
    ("/api/backtests", "get"): "BacktestService_ListBacktests",
    ("/api/sweeps", "post"): "BacktestService_RunSweep",
    ("/api/strategies/{strategy}:checkLookahead", "post"): "BacktestService_CheckLookahead",
    ("/api/backtests/{id}:export", "get"): "BacktestService_ExportBacktest",
    ("/api/sweeps/{id}:export", "get"): "BacktestService_ExportSweep",
    ("/api/sweeps/{id}:download", "get"): "BacktestService_DownloadSweepTable",
    ("/api/portfolios", "post"): "BacktestService_RunPortfolio",
    ("/api/sweeps:start", "post"): "BacktestService_StartSweep",
    ("/api/walkForwards:start", "post"): "BacktestService_StartWalkForward",
    ("/api/walkForwards/{id}", "get"): "BacktestService_GetWalkForward",
    ("/api/walkForwards/{id}:export", "get"): "BacktestService_ExportWalkForward",
    ("/api/{name}:watch", "get"): "BacktestService_WatchOperation",
    # The external rules of proto/grpc-gateway.yaml, then the annotations; GET
    # /v1/{name=operations} (list) and /v1/{name=operations/**} (get) are one OpenAPI path,
    # and the document keeps the first.
    ("/api/operations", "get"): "Operations_ListOperations",
    ("/v1/{name}", "get"): "Operations_ListOperations2",
    ("/v1/{name}:wait", "post"): "Operations_WaitOperation",
    ("/v1/{name}", "delete"): "Operations_DeleteOperation",
    ("/v1/{name}:cancel", "post"): "Operations_CancelOperation",
}


def document_of(*services: descriptor.ServiceDescriptor) -> dict[str, Any]:
    return openapi_document(
        bindings_of(services), title="t", version="1", description="d", bearer=False
    )


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (path, method): operation
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    }


def parameter(operation: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in operation["parameters"] if p["name"] == name)


def test_every_annotated_product_route_is_listed() -> None:
    listed = operations(
        openapi_document(
            bindings_of([PRICE_SERVICE, BACKTEST_SERVICE, OPERATIONS_SERVICE], EXTERNAL_RULES),
            title="t",
            version="1",
            description="d",
            bearer=False,
        )
    )

    assert {key: op["operationId"] for key, op in listed.items()} == PRODUCT_ROUTES


@pytest.mark.parametrize("services", ["product", "test proto"])
def test_document_is_valid_openapi_3(
    services: str, thing_service: descriptor.ServiceDescriptor
) -> None:
    chosen = (PRICE_SERVICE, BACKTEST_SERVICE) if services == "product" else (thing_service,)
    document = document_of(*chosen)

    schemathesis.openapi.from_dict(document).validate()  # raises on an invalid document
    assert document["openapi"].startswith("3.")


def test_responses_are_the_output_or_a_status() -> None:
    listed = operations(
        openapi_document(
            bindings_of([PRICE_SERVICE, BACKTEST_SERVICE, OPERATIONS_SERVICE], EXTERNAL_RULES),
            title="t",
            version="1",
            description="d",
            bearer=False,
        )
    )

    for operation in listed.values():
        assert set(operation["responses"]) == {"200", "default"}
        default = operation["responses"]["default"]["content"]["application/json"]["schema"]
        assert default == {"$ref": "#/components/schemas/rpcStatus"}


def test_response_body_is_the_named_fields_schema() -> None:
    get_price = operations(document_of(PRICE_SERVICE))[("/api/prices/{symbol}", "get")]

    schema = get_price["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["$ref"] == "#/components/schemas/v1PriceUpdate"


def test_streams_document_the_envelope_and_event_stream() -> None:
    stream = operations(document_of(PRICE_SERVICE))[("/api/prices:stream", "get")]

    content = stream["responses"]["200"]["content"]
    assert set(content) == {"application/json", "text/event-stream"}
    envelope = content["application/json"]["schema"]
    assert set(envelope["properties"]) == {"result", "error"}


def test_fields_not_in_path_or_body_are_query_parameters() -> None:
    listed = operations(
        openapi_document(
            bindings_of([PRICE_SERVICE, BACKTEST_SERVICE, OPERATIONS_SERVICE], EXTERNAL_RULES),
            title="t",
            version="1",
            description="d",
            bearer=False,
        )
    )

    candles = listed[("/api/candles/{symbol}/{interval}", "get")]
    assert [(p["name"], p["in"]) for p in candles["parameters"]] == [
        ("symbol", "path"),
        ("interval", "path"),
        ("startTime", "query"),
        ("endTime", "query"),
        ("limit", "query"),
        ("includeForming", "query"),
    ]
    assert parameter(candles, "startTime")["schema"] == {"type": "string", "format": "date-time"}
    symbols = parameter(listed[("/api/prices", "get")], "symbols")
    assert symbols["schema"] == {"type": "array", "items": {"type": "string"}}
    assert symbols["explode"] is True
    assert listed[("/api/backtests", "post")]["parameters"] == []  # body "*": no query


def test_comments_become_descriptions() -> None:
    document = document_of(PRICE_SERVICE)
    schemas = document["components"]["schemas"]

    assert schemas["v1PriceUpdate"]["properties"]["symbol"]["description"].startswith(
        "Exchange symbol"
    )
    assert "EVENT_KIND_TRADE" in schemas["v1EventKind"]["enum"]
    assert "`EVENT_KIND_TRADE`: A single trade" in schemas["v1EventKind"]["description"]
    get_price = operations(document)[("/api/prices/{symbol}", "get")]
    assert get_price["description"] == "Returns the latest price of one symbol."
    assert parameter(get_price, "symbol")["description"].startswith("Exchange symbol")


def test_proto3_json_types_in_schemas() -> None:
    schemas = document_of(BACKTEST_SERVICE)["components"]["schemas"]
    backtest = schemas["v1Backtest"]["properties"]

    assert backtest["barCount"]["type"] == "string"  # int64 as a string
    assert backtest["parameters"]["additionalProperties"]["format"] == "double"  # map
    assert backtest["createTime"]["format"] == "date-time"
    assert backtest["createTime"]["nullable"] is True  # unset messages are null
    assert backtest["data"]["allOf"] == [{"$ref": "#/components/schemas/v1DataRange"}]
    assert schemas["v1Metrics"]["properties"]["maxDrawdownDuration"]["type"] == "string"


def test_test_proto_paths_variables_and_bodies(thing_service: descriptor.ServiceDescriptor) -> None:
    listed = operations(document_of(thing_service))

    get_thing = listed[("/v1/{name}", "get")]
    assert parameter(get_thing, "name")["schema"]["pattern"] == "^things/[^/]+$"
    assert listed[("/v1/alias/{name}", "get")]["operationId"] == "ThingService_GetThing2"
    assert listed[("/v1/{name}:get", "post")]["operationId"] == "ThingService_GetThing3"
    assert parameter(listed[("/v1/parents/{parent.id}/things", "get")], "parent.id")["in"] == "path"
    assert parameter(listed[("/v1/files/{path}", "get")], "path")["schema"]["pattern"] == "^.*$"
    update = listed[("/v1/{thing.name}", "patch")]
    body = update["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/v1Thing"}
    assert [p["name"] for p in update["parameters"]] == ["thing.name", "updateMask"]
    create = listed[("/v1/things", "post")]
    assert create["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/v1Thing"
    }
    assert ("/v1/unmapped", "get") not in listed


@pytest.mark.asyncio(loop_scope="module")
async def test_served_document_and_docs_page(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    docs = await client.get("/docs")

    assert {(p, m) for p, ms in document["paths"].items() for m in ms} >= set(PRODUCT_ROUTES)
    assert ("/v1/{name}", "get") in {(p, m) for p, ms in document["paths"].items() for m in ms}
    assert docs.status_code == 200
    assert "/openapi.json" in docs.text
