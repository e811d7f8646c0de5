"""REST requests through the gateway (real uvicorn) to a real grpc.aio server of fakes."""

import base64
import json
from typing import Any

import httpx
import pytest
from google.protobuf import json_format

from finance.backtest.v1 import backtest_service_pb2
from tests.unit.gateway.fakes import CHART_PAGE, DOWNLOADED_PIECES, EXPORTED_CSV, FakeUpstream

pytestmark = pytest.mark.asyncio(loop_scope="module")


def last_request(upstream: FakeUpstream) -> Any:
    return upstream.recorder.requests[-1]


@pytest.mark.parametrize(
    ("method", "path", "options", "expected"),
    [
        pytest.param(
            "GET",
            "/v1/things/abc",
            {},
            {"name": "things/abc"},
            id="variable over segments {name=things/*}",
        ),
        pytest.param(
            "GET",
            "/v1/alias/things/abc",
            {},
            {"name": "things/abc"},
            id="additional_bindings get their own route",
        ),
        pytest.param(
            "POST",
            "/v1/things/abc:get",
            {"json": {"thing": {"i32": 1}}},
            {"name": "things/abc", "thing": {"i32": 1}},
            id="additional binding with a custom verb and body star",
        ),
        pytest.param(
            "POST",
            "/v1/things/abc:archive",
            {"json": {"reason": "old"}},
            {"name": "things/abc", "reason": "old"},
            id="custom verb",
        ),
        pytest.param(
            "POST",
            "/v1/things/abc:archive?reason=query",
            {"json": {}},
            {"name": "things/abc"},
            id="body star leaves the query string unread",
        ),
        pytest.param(
            "GET",
            "/v1/parents/p1/things?parent.id=ignored&pageSize=2",
            {},
            {"parent": {"id": "p1"}, "pageSize": 2},
            id="nested path variable {parent.id}, query cannot override it",
        ),
        pytest.param(
            "GET", "/v1/files/a/b/c.txt", {}, {"path": "a/b/c.txt"}, id="deep wildcard {path=**}"
        ),
        pytest.param(
            "GET",
            "/v1/files/a%2Fb%20c",
            {},
            {"path": "a/b c"},
            id="path is percent-decoded before matching (UnescapingModeLegacy)",
        ),
        pytest.param(
            "GET",
            "/v1/tags/a,b",
            {},
            {"tags": ["a", "b"]},
            id="repeated path variable is comma-separated",
        ),
        pytest.param(
            "PATCH",
            "/v1/things/x?updateMask=i32,title",
            {"json": {"name": "things/y", "i32": 3}},
            {"thing": {"name": "things/x", "i32": 3}, "updateMask": "i32,title"},
            id="single-field body; path variable inside it wins",
        ),
        pytest.param("DELETE", "/v1/things/abc", {}, {"name": "things/abc"}, id="DELETE binding"),
        pytest.param(
            "POST",
            "/api/strategies/sma_crossover:checkLookahead",
            {"json": {"every": 60, "randomPrefixes": 0}},
            {"strategy": "sma_crossover", "every": 60, "randomPrefixes": 0},
            id="custom verb after a path variable, body star (CheckLookahead)",
        ),
        pytest.param(
            "GET",
            "/v1/parents/p/things?thing.when=2024-01-02T03:04:05Z&thing.ttl=90s&thing.color=1&thing.i64=9007199254740993",
            {},
            {
                "parent": {"id": "p"},
                "thing": {
                    "when": "2024-01-02T03:04:05Z",
                    "ttl": "90s",
                    "color": "COLOR_RED",
                    "i64": "9007199254740993",
                },
            },
            id="query parameters of well-known types",
        ),
    ],
)
async def test_requests_reach_the_rpc_as_grpc_gateway_maps_them(
    client: httpx.AsyncClient,
    upstream: FakeUpstream,
    method: str,
    path: str,
    options: dict[str, Any],
    expected: dict[str, Any],
) -> None:
    response = await client.request(method, path, **options)

    assert response.status_code == 200, response.text
    assert json_format.MessageToDict(last_request(upstream)) == expected


async def test_response_body_names_the_field_returned(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/prices/BTCUSDT")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "symbol": "BTCUSDT",
        "price": "67012.34000000",
        "timestamp": "1700000000000",
        "volume": "0.5",
        "service": "price-service",
        "kind": "EVENT_KIND_TRADE",
        "eventId": "42",
        "exchange": "binance",
        "receiveTimestamp": "1700000000003",
    }


async def test_response_body_star_with_single_field_request_body(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/things", json={"name": "things/n", "i32": 7})

    assert response.status_code == 200
    assert response.json()["name"] == "things/n"
    assert response.json()["i32"] == 7
    assert "thing" not in response.json()


async def test_wildcard_matches_an_empty_segment_and_the_rpc_decides(
    client: httpx.AsyncClient, upstream: FakeUpstream
) -> None:
    response = await client.get("/api/prices/")

    assert response.status_code == 404
    assert last_request(upstream).symbol == ""


async def test_empty_query_value_of_a_string_field_is_set(
    client: httpx.AsyncClient, upstream: FakeUpstream
) -> None:
    response = await client.get("/api/backtests?page_token=&strategy=")

    assert response.status_code == 200
    assert response.json()["nextPageToken"] == ""
    assert last_request(upstream).strategy == ""


async def test_query_string_is_not_parsed_when_no_field_is_left_for_it(
    client: httpx.AsyncClient, upstream: FakeUpstream
) -> None:
    # Every field of TagsRequest is bound by the path: the handler never calls ParseForm.
    response = await client.get("/v1/tags/a,b?tags=c&x=%zz;")

    assert response.status_code == 200
    assert list(last_request(upstream).tags) == ["a", "b"]


async def test_repeated_query_parameters_fill_a_repeated_field(
    client: httpx.AsyncClient, upstream: FakeUpstream
) -> None:
    response = await client.get("/api/prices?symbols=BTCUSDT&symbols=ETHUSDT")

    assert response.status_code == 200
    assert list(last_request(upstream).symbols) == ["BTCUSDT", "ETHUSDT"]
    assert [p["symbol"] for p in response.json()["prices"]] == ["BTCUSDT", "ETHUSDT"]


async def test_path_length_fallback_form_post_serves_a_get_route(
    client: httpx.AsyncClient, upstream: FakeUpstream
) -> None:
    response = await client.post(
        "/api/prices",
        content=b"symbols=ETHUSDT",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )

    assert response.status_code == 200
    assert list(last_request(upstream).symbols) == ["ETHUSDT"]


async def test_body_fields_are_decoded_by_both_names(
    client: httpx.AsyncClient, upstream: FakeUpstream
) -> None:
    body = {
        "strategy": "sma",
        "parameters": {"fast": 5},
        "data": {"start_time": "2024-01-01T00:00:00Z"},
    }

    response = await client.post("/api/backtests", json=body)

    assert response.status_code == 200
    request = last_request(upstream)
    assert isinstance(request, backtest_service_pb2.RunBacktestRequest)
    assert dict(request.parameters) == {"fast": 5.0}
    assert response.json()["backtest"]["data"]["startTime"] == "2024-01-01T00:00:00Z"
    assert response.json()["backtest"]["data"]["endTime"] is None


async def test_empty_body_is_an_empty_request(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/backtests")

    assert response.status_code == 200
    assert response.json()["backtest"]["strategy"] == ""


ERROR_CASES = [
    pytest.param("GET", "/nowhere", {}, 404, 5, "Not Found", id="unknown route is NotFound 404"),
    pytest.param(
        "GET",
        "/api/prices/BTCUSDT/extra",
        {},
        404,
        5,
        "Not Found",
        id="extra segment is NotFound 404",
    ),
    pytest.param(
        "DELETE",
        "/api/prices/BTCUSDT",
        {},
        501,
        12,
        "Method Not Allowed",
        id="known path under another method is Unimplemented 501",
    ),
    pytest.param(
        "PUT",
        "/health",
        {},
        501,
        12,
        "Method Not Allowed",
        id="gateway routes answer another method the same way",
    ),
    pytest.param(
        "GET",
        "/api/backtests/unknown",
        {},
        404,
        5,
        "no backtest unknown",
        id="upstream NOT_FOUND is 404",
    ),
    pytest.param(
        "POST",
        "/api/backtests",
        {"content": b"{"},
        400,
        3,
        "invalid JSON body",
        id="malformed JSON is 400 naming it",
    ),
    pytest.param(
        "POST",
        "/api/backtests",
        {"content": b"[]"},
        400,
        3,
        "must be a JSON object",
        id="body of the wrong JSON type is 400",
    ),
    pytest.param(
        "POST",
        "/api/backtests",
        {"json": {"config": {"feeBps": "x"}}},
        400,
        3,
        "feeBps",
        id="bad field value in the body is 400 naming it",
    ),
    pytest.param(
        "POST",
        "/api/backtests",
        {"content": b'\xef\xbb\xbf{"strategy": "sma"}'},
        400,
        3,
        "invalid JSON body",
        id="a byte-order mark is not JSON whitespace",
    ),
    pytest.param(
        "POST",
        "/api/backtests",
        {"content": b'"sma"'},
        400,
        3,
        "must be a JSON object",
        id="a string where the request message belongs is 400",
    ),
    pytest.param(
        "PATCH",
        "/v1/things/x",
        {"content": b'{"inner": "label"}'},
        400,
        3,
        "must be a JSON object",
        id="a string where a nested message belongs is 400",
    ),
    pytest.param(
        "POST",
        "/api/backtests",
        {"content": b'{"strategy": "sma\xff"}'},
        400,
        3,
        "invalid UTF-8",
        id="a body that is not UTF-8 is 400",
    ),
    pytest.param(
        "GET",
        "/api/candles/BTCUSDT/1m?limit=",
        {},
        400,
        3,
        "limit",
        id="an empty value of an int field is 400",
    ),
    pytest.param(
        "GET",
        "/api/candles/BTCUSDT/1m?include_forming=",
        {},
        400,
        3,
        "include_forming",
        id="an empty value of a bool field is 400",
    ),
    pytest.param(
        "GET",
        "/api/backtests?page_size=abc",
        {},
        400,
        3,
        "page_size",
        id="unparsable query parameter is 400 naming it",
    ),
    pytest.param(
        "GET",
        "/api/backtests?pageSize=99999999999",
        {},
        400,
        3,
        "out of range",
        id="overflowing query parameter is 400",
    ),
    pytest.param(
        "GET",
        "/v1/fail/abc",
        {},
        400,
        3,
        "type mismatch, parameter: code",
        id="unparsable path variable is 400 type mismatch",
    ),
    pytest.param(
        "GET",
        "/api/backtests?x=%zz",
        {},
        400,
        3,
        "invalid URL escape",
        id="bad percent escape in the query is 400",
    ),
    pytest.param(
        "GET",
        "/v1/sleep/2000",
        {"headers": {"Grpc-Timeout": "100m"}},
        504,
        4,
        "",
        id="Grpc-Timeout deadline exceeded is 504",
    ),
    pytest.param(
        "GET",
        "/v1/sleep/1",
        {"headers": {"Grpc-Timeout": "soon"}},
        400,
        3,
        "invalid grpc-timeout",
        id="bad Grpc-Timeout is 400",
    ),
]


@pytest.mark.parametrize(("method", "path", "options", "status", "code", "message"), ERROR_CASES)
async def test_errors_are_status_bodies_with_mapped_http_status(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    options: dict[str, Any],
    status: int,
    code: int,
    message: str,
) -> None:
    response = await client.request(method, path, **options)

    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["code"] == code
    assert message in body["message"]
    assert body["details"] == []


UPSTREAM_CODES = [
    (1, 499), (2, 500), (3, 400), (4, 504), (5, 404), (6, 409), (7, 403), (8, 429),
    (9, 400), (10, 409), (11, 400), (12, 501), (13, 500), (14, 503), (15, 500), (16, 401),
]  # fmt: skip


@pytest.mark.parametrize(
    ("code", "status"), UPSTREAM_CODES, ids=[f"code {c} is HTTP {s}" for c, s in UPSTREAM_CODES]
)
async def test_upstream_status_codes_map_as_http_status_from_code(
    client: httpx.AsyncClient, code: int, status: int
) -> None:
    response = await client.get(f"/v1/fail/{code}", params={"message": f"failed with {code}"})

    assert response.status_code == status
    assert response.json() == {"code": code, "message": f"failed with {code}", "details": []}


async def test_unauthenticated_carries_a_challenge(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/fail/16")

    assert response.headers["www-authenticate"] == "Bearer"


async def test_rich_error_details_are_rendered(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/v1/fail/8", params={"message": "slow down", "with_details": "true"}
    )

    assert response.status_code == 429
    assert response.json()["details"] == [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "TOO_FAST",
            "domain": "finplat",
            "metadata": {},
        }
    ]


async def test_oversized_body_is_413_before_any_upstream_call(
    client: httpx.AsyncClient, upstream: FakeUpstream
) -> None:
    response = await client.post("/api/backtests", content=b"{" + b" " * (4 * 1024 * 1024) + b"}")

    assert response.status_code == 413
    assert response.json()["code"] == 8
    assert upstream.recorder.requests == []


async def test_request_headers_are_forwarded_as_grpc_gateway_forwards_them(
    client: httpx.AsyncClient, upstream: FakeUpstream
) -> None:
    headers = {
        "Authorization": "Bearer abc",
        "Grpc-Metadata-Request-Id": "r-1",
        "Grpc-Metadata-Trace-Bin": base64.b64encode(b"\x01\x02").decode(),
        "User-Agent": "tests/1",
        "X-Not-Forwarded": "no",
    }

    await client.get("/api/prices/BTCUSDT", headers=headers)

    metadata = upstream.recorder.metadata[-1]
    assert metadata["authorization"] == "Bearer abc"
    assert metadata["grpcgateway-authorization"] == "Bearer abc"
    assert metadata["request-id"] == "r-1"
    assert metadata["trace-bin"] == b"\x01\x02"
    assert metadata["grpcgateway-user-agent"] == "tests/1"
    assert metadata["x-forwarded-for"] == "127.0.0.1"
    assert str(metadata["x-forwarded-host"]).startswith("127.0.0.1:")
    assert "x-not-forwarded" not in metadata


async def test_response_metadata_is_returned_as_headers(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/things/abc")

    assert response.headers["grpc-metadata-x-rpc"] == "GetThing"
    assert response.headers["grpc-metadata-x-blob-bin"] == base64.b64encode(b"\x00\x01").decode()
    assert response.headers["grpc-trailer-x-done"] == "yes"


async def test_error_responses_keep_the_header_metadata(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/fail/9")

    assert response.status_code == 400
    assert response.headers["grpc-metadata-x-rpc"] == "Fail"


async def test_unmapped_rpcs_have_no_route(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/unmapped")

    assert response.status_code == 404


async def test_http_body_response_is_sent_as_is_with_its_content_type(
    client: httpx.AsyncClient,
) -> None:
    """grpc-gateway's HTTPBodyMarshaler: a google.api.HttpBody reply is not JSON-encoded."""
    found = await client.get("/api/backtests/known/chart")
    missing = await client.get("/api/backtests/nope/chart")

    assert found.status_code == 200
    assert found.headers["content-type"] == "text/html; charset=utf-8"
    assert found.content == CHART_PAGE
    assert missing.status_code == 404


async def test_a_stream_of_http_bodies_is_one_file_sent_as_it_comes(
    client: httpx.AsyncClient, upstream: FakeUpstream
) -> None:
    """grpc-gateway's ForwardResponseStream with HttpBody: each message's bytes as they are,
    no envelope or delimiter, the first message's content type; event streams too."""
    found = await client.get("/api/sweeps/known:download", params={"format": "2"})
    asked = json_format.MessageToDict(last_request(upstream))
    as_events = await client.get(
        "/api/sweeps/known:download", headers={"Accept": "text/event-stream"}
    )
    missing = await client.get("/api/sweeps/nope:download")
    broken = await client.get("/api/sweeps/breaks:download")

    assert found.status_code == 200
    assert found.headers["content-type"] == "text/csv"
    assert found.content == b"".join(DOWNLOADED_PIECES)
    assert asked == {"id": "known", "format": "FILE_FORMAT_CSV"}
    assert (as_events.headers["content-type"], as_events.content) == (
        "text/csv", b"".join(DOWNLOADED_PIECES),
    )  # fmt: skip
    # Refused before any byte: the status, as a unary call's.
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "no sweep with id 'nope'"
    # Failed after the first piece: the status is sent, the body ends with the error line.
    assert broken.status_code == 200
    assert broken.content.startswith(DOWNLOADED_PIECES[0])
    error_line = broken.content.removeprefix(DOWNLOADED_PIECES[0])
    assert error_line.endswith(b"\n")
    assert json.loads(error_line)["error"]["message"] == "results store: disk I/O error"


async def test_an_exported_table_is_a_file_with_its_type_and_the_query_reaches_the_rpc(
    client: httpx.AsyncClient, upstream: FakeUpstream
) -> None:
    response = await client.get(
        "/api/backtests/b1:export", params={"table": "RESULT_TABLE_EQUITY", "format": "2"}
    )

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv"
    assert response.content == EXPORTED_CSV
    assert json_format.MessageToDict(last_request(upstream)) == {
        "id": "b1", "table": "RESULT_TABLE_EQUITY", "format": "FILE_FORMAT_CSV",
    }  # fmt: skip
