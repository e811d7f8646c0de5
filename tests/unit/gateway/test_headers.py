"""HTTP headers to gRPC metadata and back, per grpc-gateway v2's runtime/context.go."""

import pytest

from finplat.gateway.service.headers import incoming_metadata, outgoing_headers, parse_grpc_timeout
from finplat.gateway.service.status_to_http import GatewayError


def metadata_of(
    *headers: tuple[str, str], client: str | None = "10.0.0.7"
) -> list[tuple[str, str | bytes]]:
    raw = [(k.lower().encode(), v.encode("latin-1")) for k, v in headers]
    return incoming_metadata(raw, client)[0]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param(
            ("Authorization", "Bearer t"),
            [("authorization", "Bearer t"), ("grpcgateway-authorization", "Bearer t")],
            id="Authorization passes through and as a permanent header",
        ),
        pytest.param(
            ("User-Agent", "curl/8"),
            [("grpcgateway-user-agent", "curl/8")],
            id="permanent header gets the grpcgateway- prefix",
        ),
        pytest.param(
            ("Accept", "application/json"),
            [("grpcgateway-accept", "application/json")],
            id="Accept is permanent",
        ),
        pytest.param(
            ("Grpc-Metadata-Request-Id", "r-1"),
            [("request-id", "r-1")],
            id="Grpc-Metadata- prefix is removed",
        ),
        pytest.param(
            ("Grpc-Metadata-Trace-Bin", "AAEC"),
            [("trace-bin", b"\x00\x01\x02")],
            id="binary metadata is base64-decoded",
        ),
        pytest.param(
            ("Grpc-Metadata-Trace-Bin", "AAE"),
            [("trace-bin", b"\x00\x01")],
            id="unpadded binary metadata",
        ),
        pytest.param(("X-Custom", "v"), [], id="other headers are not forwarded"),
        pytest.param(("Grpc-Metadata-Bad Key", "v"), [], id="invalid gRPC key is skipped"),
        pytest.param(("Grpc-Metadata-Note", "caf\xe9"), [], id="non-ASCII text value is skipped"),
        pytest.param(("Grpc-Metadata-Grpc-Status", "0"), [], id="reserved grpc- keys are skipped"),
    ],
)
def test_request_headers_become_metadata(
    header: tuple[str, str], expected: list[tuple[str, str | bytes]]
) -> None:
    metadata = metadata_of(header, client=None)

    assert metadata == expected


def test_caller_is_described_by_x_forwarded_headers() -> None:
    metadata = metadata_of(("Host", "gw.example"), ("X-Forwarded-For", "1.2.3.4"))

    assert ("x-forwarded-host", "gw.example") in metadata
    assert ("x-forwarded-for", "1.2.3.4, 10.0.0.7") in metadata


def test_x_forwarded_host_wins_over_host() -> None:
    metadata = metadata_of(("Host", "gw.internal"), ("X-Forwarded-Host", "api.example"))

    assert ("x-forwarded-host", "api.example") in metadata


def test_bad_binary_header_is_invalid_argument() -> None:
    with pytest.raises(GatewayError) as caught:
        metadata_of(("Grpc-Metadata-Trace-Bin", "!!!"))

    assert caught.value.status == 400
    assert "invalid binary header" in caught.value.message


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        pytest.param("1S", 1.0, id="seconds"),
        pytest.param("100m", 0.1, id="milliseconds"),
        pytest.param("5M", 300.0, id="minutes"),
        pytest.param("2H", 7200.0, id="hours"),
        pytest.param("250u", 0.00025, id="microseconds"),
        pytest.param("1000000n", 0.001, id="nanoseconds"),
        pytest.param("0S", 0.0, id="zero means no deadline"),
        pytest.param("+3S", 3.0, id="sign accepted as strconv.ParseInt does"),
        pytest.param("-1S", -1.0, id="negative: a deadline already passed"),
        pytest.param("9223372036854775807n", 9223372036.854775807, id="the largest time.Duration"),
        # 2562048 h is 9223372800000000000 ns, past int64: Go's multiplication wraps around to
        # 9223372800000000000 - 2**64 = -9223371273709551616 ns.
        pytest.param("2562048H", -9223371273.709551616, id="time.Duration overflow wraps"),
    ],
)
def test_grpc_timeout_is_parsed_in_grpc_gateway_format(value: str, seconds: float) -> None:
    assert parse_grpc_timeout(value) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value", ["S", "1", "1s", "1x", "1.5S", "abcS", "", "9223372036854775808n", " 1S"]
)
def test_bad_grpc_timeout_is_invalid_argument(value: str) -> None:
    with pytest.raises(GatewayError, match="invalid grpc-timeout") as caught:
        parse_grpc_timeout(value)

    assert caught.value.status == 400


def test_grpc_timeout_header_sets_the_timeout_and_is_not_forwarded() -> None:
    metadata, timeout = incoming_metadata([(b"grpc-timeout", b"250m")], None)

    assert timeout == pytest.approx(0.25)
    assert metadata == []


@pytest.mark.parametrize(
    ("headers", "timeout"),
    [
        pytest.param([(b"grpc-timeout", b"")], None, id="an empty value is no timeout"),
        pytest.param(
            [(b"grpc-timeout", b"1S"), (b"grpc-timeout", b"soon")], 1.0, id="first value counts"
        ),
        pytest.param(
            [(b"grpc-timeout", b""), (b"grpc-timeout", b"1S")], None, id="even when empty"
        ),
    ],
)
def test_only_the_first_grpc_timeout_counts_as_header_get_returns_it(
    headers: list[tuple[bytes, bytes]], timeout: float | None
) -> None:
    assert incoming_metadata(headers, None)[1] == timeout


def test_grpc_timeout_is_checked_before_any_other_header() -> None:
    headers = [(b"grpc-metadata-trace-bin", b"!!!"), (b"grpc-timeout", b"soon")]

    with pytest.raises(GatewayError, match="invalid grpc-timeout"):
        incoming_metadata(headers, None)


def test_response_metadata_becomes_grpc_metadata_and_trailer_headers() -> None:
    headers = outgoing_headers(
        [("x-request-id", "r-1"), ("blob-bin", b"\x00\x01")],
        [("x-done", "yes"), ("grpc-status-details-bin", b"...")],
    )

    assert headers == [
        (b"Grpc-Metadata-X-Request-Id", b"r-1"),
        (b"Grpc-Metadata-Blob-Bin", b"AAE="),
        (b"Grpc-Trailer-X-Done", b"yes"),
    ]
