"""Error mapping (runtime/errors.go) and the default JSONPb marshaler's output."""

import json

import grpc
import pytest
from google.protobuf import descriptor, message_factory

from finance.backtest.v1 import backtest_pb2, backtest_service_pb2
from finance.market.v1 import market_pb2, price_service_pb2
from finplat.gateway.domain import marshal
from finplat.gateway.service.status_to_http import GatewayError, http_status_from_code

# grpc-gateway v2's HTTPStatusFromCode, written out independently of the code under test.
GRPC_GATEWAY_STATUS = [
    ("OK", 200),
    ("CANCELLED", 499),
    ("UNKNOWN", 500),
    ("INVALID_ARGUMENT", 400),
    ("DEADLINE_EXCEEDED", 504),
    ("NOT_FOUND", 404),
    ("ALREADY_EXISTS", 409),
    ("PERMISSION_DENIED", 403),
    ("UNAUTHENTICATED", 401),
    ("RESOURCE_EXHAUSTED", 429),
    ("FAILED_PRECONDITION", 400),
    ("ABORTED", 409),
    ("OUT_OF_RANGE", 400),
    ("UNIMPLEMENTED", 501),
    ("INTERNAL", 500),
    ("UNAVAILABLE", 503),
    ("DATA_LOSS", 500),
]


@pytest.mark.parametrize(
    ("code", "status"), GRPC_GATEWAY_STATUS, ids=[c for c, _ in GRPC_GATEWAY_STATUS]
)
def test_http_status_from_code(code: str, status: int) -> None:
    assert http_status_from_code(grpc.StatusCode[code]) == status


def test_error_body_is_a_google_rpc_status_with_empty_details() -> None:
    error = GatewayError(grpc.StatusCode.NOT_FOUND, "no price for X")

    assert json.loads(error.body()) == {"code": 5, "message": "no price for X", "details": []}
    assert error.status == 404


def test_gateway_may_choose_a_more_precise_http_status() -> None:
    error = GatewayError(grpc.StatusCode.RESOURCE_EXHAUSTED, "too big", http_status=413)

    assert error.status == 413
    assert json.loads(error.body())["code"] == 8


def test_output_uses_json_names_and_emits_unpopulated_fields() -> None:
    response = backtest_service_pb2.GetBacktestResponse(
        backtest=backtest_pb2.Backtest(id="b-1", trades=[backtest_pb2.Trade(pnl=1.5)])
    )

    value = marshal.to_dict(response)

    backtest = value["backtest"]
    assert backtest["barCount"] == "0"  # 64-bit integers are strings
    assert backtest["equityCurve"] == []  # empty repeated fields are emitted
    assert backtest["parameters"] == {}  # and empty maps
    assert backtest["data"] is None  # unset message fields are null
    assert backtest["createTime"] is None
    assert backtest["trades"][0]["side"] == "SIDE_UNSPECIFIED"  # enums by name
    assert backtest["trades"][0]["entryTime"] is None  # nulls inside repeated messages too


def test_fields_of_a_oneof_stay_absent_when_unset(
    thing_service: descriptor.ServiceDescriptor,
) -> None:
    thing_type = (
        thing_service.methods_by_name["GetThing"].input_type.fields_by_name["thing"].message_type
    )
    assert thing_type is not None
    thing = message_factory.GetMessageClass(thing_type)()

    value = marshal.to_dict(thing)

    assert "alpha" not in value
    assert "beta" not in value
    assert "nickname" not in value  # proto3 optional: a synthetic oneof
    assert value["inner"] is None
    assert value["title"] == ""  # json_name option honoured


def test_response_body_of_an_unset_message_is_its_zero_value() -> None:
    response = price_service_pb2.GetPriceResponse()
    field = response.DESCRIPTOR.fields_by_name["price"]

    value = marshal.field_value(response, field)

    assert value["symbol"] == ""
    assert value["timestamp"] == "0"
    assert value["kind"] == "EVENT_KIND_UNSPECIFIED"


def test_response_body_of_a_repeated_field_is_the_list() -> None:
    response = price_service_pb2.ListPricesResponse(prices=[market_pb2.PriceUpdate(symbol="A")])
    field = response.DESCRIPTOR.fields_by_name["prices"]

    assert [p["symbol"] for p in marshal.field_value(response, field)] == ["A"]
