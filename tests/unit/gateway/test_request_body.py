"""JSON request bodies as grpc-gateway's JSONPb decoder reads them: Go's json.Decoder takes the
first value, protojson unmarshals it (runtime/marshal_jsonpb.go, decodeJSONPb)."""

from typing import Any

import pytest
from google.protobuf import descriptor, json_format, message_factory

from finance.backtest.v1 import backtest_service_pb2
from finplat.gateway.domain.request_body import NO_VALUE, BodyError, first_json_value, parse_body


@pytest.fixture
def update_thing(thing_service: descriptor.ServiceDescriptor) -> descriptor.Descriptor:
    """UpdateThingRequest, whose binding has `body: "thing"`."""
    return thing_service.methods_by_name["UpdateThing"].input_type


def thing_body(update_thing: descriptor.Descriptor, raw: bytes) -> Any:
    request = message_factory.GetMessageClass(update_thing)()
    parse_body(raw, request, update_thing.fields_by_name["thing"])
    return json_format.MessageToDict(request)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            b'{"data": {"start_time": "2024-01-01T00:00:00Z"}}', id="proto names accepted"
        ),
        pytest.param(b'{"data": {"startTime": "2024-01-01T00:00:00Z"}}', id="JSON names accepted"),
        pytest.param(
            b'{"data": {"startTime": "2024-01-01T00:00:00Z"}, "bogus": 1}',
            id="unknown fields discarded",
        ),
        pytest.param(
            b' \t\r\n{"data": {"startTime": "2024-01-01T00:00:00Z"}}',
            id="leading JSON whitespace skipped",
        ),
        pytest.param(
            b'{"data": {"startTime": "2024-01-01T00:00:00Z"}} {"strategy": 7} \xff',
            id="what follows the first object is never read",
        ),
        pytest.param(
            b'{"data": {"startTime": "2024-01-01T00:00:00Z", "symbol": null}, "config": null}',
            id="null inside an object is an unset field",
        ),
    ],
)
def test_request_body_accepts_what_protojson_accepts(body: bytes) -> None:
    request = backtest_service_pb2.RunBacktestRequest()

    parse_body(body, request, None)

    assert request.data.start_time.seconds == 1_704_067_200
    assert request.strategy == ""


@pytest.mark.parametrize(
    ("body", "error"),
    [
        pytest.param(b"{", "invalid JSON body", id="malformed JSON"),
        pytest.param(b"[1, 2]", "must be a JSON object, not an array", id="array for the message"),
        pytest.param(b'"abc"', "must be a JSON object, not a string", id="string for the message"),
        pytest.param(b"null", "must be a JSON object, not null", id="null for the message"),
        pytest.param(
            b'{"data": "BTCUSDT"}', "body.data: finance.backtest.v1.DataRange", id="nested string"
        ),
        pytest.param(b'{"config": []}', "body.config", id="nested array"),
        pytest.param(b'{"config": {"fee_bps": "cheap"}}', "invalid body", id="wrong value type"),
        pytest.param(b'{"config": {"fee_bps": NaN}}', "invalid JSON body", id="NaN literal"),
        pytest.param(b"\xef\xbb\xbf{}", "invalid JSON body", id="UTF-8 byte-order mark"),
        pytest.param(b"\xff\xfe{\x00}\x00", "invalid JSON body", id="UTF-16"),
        pytest.param(b'{"strategy": "\xff"}', "invalid UTF-8", id="invalid UTF-8 in a string"),
        pytest.param(b'{"strategy": "\xed\xa0\x80"}', "invalid UTF-8", id="encoded surrogate"),
        pytest.param(b'{"strategy": "\\ud800"}', "invalid body", id="unpaired surrogate escape"),
        pytest.param(b"[" * 100_000, "invalid JSON body", id="nesting too deep"),
    ],
)
def test_bad_request_bodies_are_body_errors(body: bytes, error: str) -> None:
    with pytest.raises(BodyError, match=error):
        parse_body(body, backtest_service_pb2.RunBacktestRequest(), None)


def test_empty_body_leaves_the_message_unchanged() -> None:
    request = backtest_service_pb2.RunBacktestRequest(strategy="kept")

    parse_body(b"  \n", request, None)

    assert request.strategy == "kept"


def test_single_field_body_is_the_fields_json() -> None:
    request = backtest_service_pb2.RunBacktestRequest()
    field = request.DESCRIPTOR.fields_by_name["data"]

    parse_body(b'{"symbol": "BTCUSDT"}', request, field)

    assert request.data.symbol == "BTCUSDT"


def test_single_message_field_body_must_be_an_object(update_thing: descriptor.Descriptor) -> None:
    assert thing_body(update_thing, b'{"i32": 3, "inner": null}') == {"thing": {"i32": 3}}
    for raw in (b'"abc"', b"[]", b"null", b"3", b'{"inner": "abc"}', b'{"inner": {"deeper": 1}}'):
        with pytest.raises(BodyError, match="must be a JSON object"):
            thing_body(update_thing, raw)


def test_well_known_types_keep_their_json_forms_inside_a_body(
    update_thing: descriptor.Descriptor,
) -> None:
    raw = b'{"when": "2024-01-02T03:04:05Z", "maybeI64": "5", "extra": {"a": [1, null]}}'

    assert thing_body(update_thing, raw) == {
        "thing": {"when": "2024-01-02T03:04:05Z", "maybeI64": "5", "extra": {"a": [1, None]}}
    }


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(b'{"a": 1}xyz', {"a": 1}, id="nothing after an object is read"),
        pytest.param(b'"abc" xyz', "abc", id="a string ends at whitespace"),
        pytest.param(b"12\n", 12, id="a number ends at whitespace"),
        pytest.param(b"true", True, id="a literal ends at the end"),
        pytest.param(b"null", None, id="null is a value"),
        pytest.param(b" \r\n\t", NO_VALUE, id="only whitespace is io.EOF"),
        pytest.param(b"", NO_VALUE, id="empty is io.EOF"),
    ],
)
def test_first_json_value_is_what_go_json_decoder_reads(raw: bytes, expected: Any) -> None:
    assert first_json_value(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b'"abc"x', id="a string followed by a non-space"),
        pytest.param(b"12x", id="a number followed by a non-space"),
        pytest.param(b"nullx", id="a literal followed by a non-space"),
        pytest.param(b"Infinity", id="Infinity is not JSON"),
    ],
)
def test_go_json_decoder_needs_to_see_where_a_scalar_ends(raw: bytes) -> None:
    with pytest.raises(BodyError, match="invalid JSON body"):
        first_json_value(raw)
