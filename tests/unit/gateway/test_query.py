"""Query parameters and path values into messages, per grpc-gateway v2's runtime/query.go."""

from typing import Any

import pytest
from google.protobuf import descriptor, json_format, message, message_factory

from finplat.gateway.domain.query import (
    FieldValueError,
    parse_query_string,
    populate_field,
    populate_query,
)
from finplat.gateway.domain.scalars import parse_duration, parse_float, parse_int


@pytest.fixture
def search(thing_service: descriptor.ServiceDescriptor) -> message.Message:
    request_type = thing_service.methods_by_name["SearchThings"].input_type
    return message_factory.GetMessageClass(request_type)()


def parsed(msg: message.Message, query: bytes, bound: tuple[tuple[str, ...], ...] = ()) -> Any:
    populate_query(msg, parse_query_string(query), bound)
    return json_format.MessageToDict(msg)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param(b"page_size=5", {"pageSize": 5}, id="proto field name"),
        pytest.param(b"pageSize=5", {"pageSize": 5}, id="JSON field name"),
        pytest.param(b"thing.title=x", {"thing": {"title": "x"}}, id="custom json_name"),
        pytest.param(
            b"thing.inner.deeper.level=3",
            {"thing": {"inner": {"deeper": {"level": 3}}}},
            id="nested with dots",
        ),
        pytest.param(
            b"thing.tags=a&thing.tags=b",
            {"thing": {"tags": ["a", "b"]}},
            id="repeated field from repeated params",
        ),
        pytest.param(
            b"thing.tags=a,b", {"thing": {"tags": ["a,b"]}}, id="commas are not split in the query"
        ),
        pytest.param(
            b"thing.color=COLOR_RED", {"thing": {"color": "COLOR_RED"}}, id="enum by name"
        ),
        pytest.param(b"thing.color=2", {"thing": {"color": "COLOR_GREEN"}}, id="enum by number"),
        pytest.param(
            b"thing.colors=1&thing.colors=COLOR_GREEN",
            {"thing": {"colors": ["COLOR_RED", "COLOR_GREEN"]}},
            id="repeated enum",
        ),
        pytest.param(b"thing.flag=t", {"thing": {"flag": True}}, id="bool as strconv.ParseBool"),
        pytest.param(
            b"thing.i64=9007199254740993",
            {"thing": {"i64": "9007199254740993"}},
            id="int64 beyond double precision",
        ),
        pytest.param(
            b"thing.u64=18446744073709551615",
            {"thing": {"u64": "18446744073709551615"}},
            id="uint64 max",
        ),
        pytest.param(b"thing.i32=-5", {"thing": {"i32": -5}}, id="signed int32"),
        pytest.param(b"thing.dbl=1e-3", {"thing": {"dbl": 0.001}}, id="double with exponent"),
        pytest.param(b"thing.dbl=NaN", {"thing": {"dbl": "NaN"}}, id="double NaN"),
        pytest.param(b"thing.data=AAE%3D", {"thing": {"data": "AAE="}}, id="bytes standard base64"),
        pytest.param(
            b"thing.data=_-8", {"thing": {"data": "/+8="}}, id="bytes URL-safe base64 unpadded"
        ),
        pytest.param(
            b"thing.when=2024-01-02T03:04:05.5Z",
            {"thing": {"when": "2024-01-02T03:04:05.500Z"}},
            id="Timestamp RFC 3339",
        ),
        pytest.param(
            b"thing.when=2024-01-02T03:04:05%2B01:00",
            {"thing": {"when": "2024-01-02T02:04:05Z"}},
            id="Timestamp with offset",
        ),
        pytest.param(b"thing.ttl=1.5s", {"thing": {"ttl": "1.500s"}}, id="Duration seconds"),
        pytest.param(
            b"thing.ttl=1h30m", {"thing": {"ttl": "5400s"}}, id="Duration as time.ParseDuration"
        ),
        pytest.param(b"thing.ttl=-300ms", {"thing": {"ttl": "-0.300s"}}, id="negative Duration"),
        pytest.param(b"thing.maybeI64=5", {"thing": {"maybeI64": "5"}}, id="Int64Value wrapper"),
        pytest.param(
            b"thing.maybe_flag=false", {"thing": {"maybeFlag": False}}, id="BoolValue wrapper"
        ),
        pytest.param(
            b"thing.maybe_dbl=2.5", {"thing": {"maybeDbl": 2.5}}, id="DoubleValue wrapper"
        ),
        pytest.param(
            b"thing.mask=a,b.c", {"thing": {"mask": "a,b.c"}}, id="FieldMask comma-separated"
        ),
        pytest.param(
            b"thing.extra=%7B%22k%22%3A1%7D", {"thing": {"extra": {"k": 1.0}}}, id="Struct as JSON"
        ),
        pytest.param(
            b"thing.counts%5Ba%5D=1&thing.counts%5Bb%5D=2",
            {"thing": {"counts": {"a": 1, "b": 2}}},
            id="map as field[key]=value",
        ),
        pytest.param(b"thing.nickname=n", {"thing": {"nickname": "n"}}, id="proto3 optional field"),
        pytest.param(b"thing.alpha=a", {"thing": {"alpha": "a"}}, id="oneof member"),
        pytest.param(b"unknown=1&thing.unknown.deeper=2", {}, id="unknown parameters are ignored"),
        pytest.param(
            b"thing.name=a+b%20c", {"thing": {"name": "a b c"}}, id="plus and percent decoding"
        ),
        pytest.param(b"&&page_size=1&", {"pageSize": 1}, id="empty pairs skipped"),
    ],
)
def test_query_parameters_populate_fields(
    search: message.Message, query: bytes, expected: Any
) -> None:
    assert parsed(search, query) == expected


def test_parameters_under_bound_fields_are_ignored(search: message.Message) -> None:
    result = parsed(search, b"parent.id=q&thing.i32=1", bound=(("parent", "id"),))

    assert result == {"thing": {"i32": 1}}


def test_bound_fields_are_recognised_under_their_json_names(search: message.Message) -> None:
    # normalizeFieldPath turns `pageSize` into `page_size` before the filter is consulted.
    assert parsed(search, b"pageSize=5&thing.maybeI64=1", bound=(("page_size",),)) == {
        "thing": {"maybeI64": "1"}
    }


# runtime.PopulateQueryParameters has no special case for an empty value: it is parsed as the
# field's type parses "", and the field's parent messages are created on the way.
EMPTY_VALUES = [
    pytest.param(b"thing.name=", {"thing": {}}, id="string: set to empty"),
    pytest.param(b"thing.title", {"thing": {}}, id="no '=' at all is an empty value"),
    pytest.param(b"thing.alpha=", {"thing": {"alpha": ""}}, id="oneof string: member chosen"),
    pytest.param(b"thing.nickname=", {"thing": {"nickname": ""}}, id="optional string: present"),
    pytest.param(b"thing.maybe_str=", {"thing": {"maybeStr": ""}}, id="StringValue: present"),
    pytest.param(b"thing.tags=", {"thing": {"tags": [""]}}, id="repeated string: one empty item"),
    pytest.param(b"thing.data=", {"thing": {}}, id="bytes: base64 of nothing"),
    pytest.param(b"thing.mask=", {"thing": {"mask": ""}}, id="FieldMask: one empty path"),
    pytest.param(b"thing.counts%5B%5D=7", {"thing": {"counts": {"": 7}}}, id="map: empty key"),
]


@pytest.mark.parametrize(("query", "expected"), EMPTY_VALUES)
def test_empty_values_of_text_fields_are_set(
    search: message.Message, query: bytes, expected: Any
) -> None:
    assert parsed(search, query) == expected


@pytest.mark.parametrize(
    "query",
    [
        pytest.param(b"page_size=", id="int32"),
        pytest.param(b"pageSize", id="int32, no '='"),
        pytest.param(b"thing.u64=", id="uint64"),
        pytest.param(b"thing.dbl=", id="double"),
        pytest.param(b"thing.flag=", id="bool"),
        pytest.param(b"thing.color=", id="enum"),
        pytest.param(b"thing.nums=", id="repeated int32"),
        pytest.param(b"thing.colors=", id="repeated enum"),
        pytest.param(b"thing.counts%5Ba%5D=", id="map value int32"),
        pytest.param(b"thing.when=", id="Timestamp"),
        pytest.param(b"thing.ttl=", id="Duration"),
        pytest.param(b"thing.maybe_i64=", id="Int64Value"),
        pytest.param(b"thing.maybe_flag=", id="BoolValue"),
        pytest.param(b"thing.extra=", id="Struct"),
    ],
)
def test_empty_values_of_typed_fields_are_parse_errors(
    search: message.Message, query: bytes
) -> None:
    with pytest.raises(FieldValueError, match="parsing"):
        parsed(search, query)


@pytest.mark.parametrize(
    ("query", "error"),
    [
        pytest.param(
            b"thing.i32=abc",
            "parsing field 'thing.i32': invalid integer 'abc'",
            id="unparsable int names the field",
        ),
        pytest.param(b"thing.i32=2147483648", "out of range for int32", id="int32 overflow"),
        pytest.param(b"thing.u32=-1", "invalid unsigned integer", id="negative uint32"),
        pytest.param(
            b"thing.i32=1_000", "invalid integer", id="underscores rejected as by strconv"
        ),
        pytest.param(b"thing.flt=1e39", "out of range for float32", id="float32 overflow"),
        pytest.param(b"thing.dbl=1e400", "out of range for float64", id="float64 overflow"),
        pytest.param(b"thing.flag=yes", "invalid boolean", id="bool outside ParseBool"),
        pytest.param(b"thing.color=PURPLE", "is not a valid value", id="unknown enum name"),
        pytest.param(b"thing.color=7", "is not a valid value", id="unknown enum number"),
        pytest.param(b"thing.when=yesterday", "invalid RFC 3339 timestamp", id="bad Timestamp"),
        pytest.param(b"thing.ttl=5", "invalid duration", id="Duration without unit"),
        pytest.param(b"thing.data=%21%21", "invalid base64", id="bad base64"),
        pytest.param(
            b"thing.i32=1&thing.i32=2",
            "too many values for field 'thing.i32'",
            id="repeated value for singular field",
        ),
        pytest.param(
            b"thing.alpha=a&thing.beta=1",
            "already set for oneof 'choice'",
            id="second oneof member",
        ),
        pytest.param(b"thing.name.x=1", "'name' is not a message", id="path through a scalar"),
        pytest.param(
            b"thing.tags.x=1", "'tags' is not a message", id="path through a repeated field"
        ),
        pytest.param(b"thing.inner=x", "unsupported message type", id="plain message as a scalar"),
        pytest.param(
            b"thing.counts%5Ba%5D=x", "parsing map value 'thing.counts'", id="bad map value"
        ),
        pytest.param(b"a=%zz", "invalid URL escape", id="bad percent escape"),
        pytest.param(
            b"a=1;b=2", "invalid semicolon separator", id="semicolon separator as Go 1.17+"
        ),
        pytest.param(b"a=%ff", "not valid UTF-8", id="invalid UTF-8"),
    ],
)
def test_bad_parameters_are_errors_naming_the_problem(
    search: message.Message, query: bytes, error: str
) -> None:
    with pytest.raises(FieldValueError, match=error.replace("(", r"\(").replace(")", r"\)")):
        parsed(search, query)


def test_populate_field_sets_a_path_variable(search: message.Message) -> None:
    populate_field(search, ["parent", "id"], ["p-1"])

    assert json_format.MessageToDict(search) == {"parent": {"id": "p-1"}}


@pytest.mark.parametrize(
    ("text", "seconds", "nanos"),
    [
        pytest.param("0", 0, 0, id="zero without unit"),
        pytest.param("1.5s", 1, 500_000_000, id="fractional seconds"),
        pytest.param("2h45m", 9900, 0, id="hours and minutes"),
        pytest.param("300ms", 0, 300_000_000, id="milliseconds"),
        pytest.param("1us", 0, 1_000, id="microseconds"),
        pytest.param("1µs", 0, 1_000, id="micro sign"),
        pytest.param("-1.5h", -5400, 0, id="negative"),
        pytest.param(".5s", 0, 500_000_000, id="leading dot"),
    ],
)
def test_durations_parse_as_go_time_parse_duration(text: str, seconds: int, nanos: int) -> None:
    assert parse_duration(text) == (seconds, nanos)


@pytest.mark.parametrize("text", ["", "s", "1", "1d", "1.s.", "--1s", "1 s"])
def test_durations_go_rejects_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("+5", 5), ("-2147483648", -(2**31)), ("007", 7)],
)
def test_ints_parse_as_strconv(text: str, expected: int) -> None:
    assert parse_int(text, 32) == expected


@pytest.mark.parametrize("text", [" 5", "5 ", "0x10", "1e3", ""])
def test_ints_strconv_rejects_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="integer"):
        parse_int(text, 64)


@pytest.mark.parametrize(
    ("text", "expected"), [("Inf", float("inf")), ("-infinity", float("-inf")), (".5", 0.5)]
)
def test_floats_parse_as_strconv(text: str, expected: float) -> None:
    assert parse_float(text) == expected
