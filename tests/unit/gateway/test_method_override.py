"""Form POSTs standing for other methods, as grpc-gateway's ServeMux.ServeHTTP takes them.

With `X-HTTP-Method-Override` on a POST whose Content-Type is exactly
`application/x-www-form-urlencoded`, ServeHTTP calls r.ParseForm() (400 InvalidArgument when it
fails) and routes under strings.ToUpper(override). The handler then finds the body consumed and
reads its parameters from r.Form: the form's values first, then the URL query's.
"""

from typing import Any

import httpx
import pytest
from google.protobuf import json_format

from tests.unit.gateway.fakes import FakeUpstream

pytestmark = pytest.mark.asyncio(loop_scope="module")

FORM = {b"content-type": b"application/x-www-form-urlencoded"}


def override(method: str) -> dict[bytes, bytes]:
    return {**FORM, b"x-http-method-override": method.encode()}


def last_request(upstream: FakeUpstream) -> Any:
    return json_format.MessageToDict(upstream.recorder.requests[-1])


@pytest.mark.parametrize(
    ("path", "body", "headers", "rpc", "expected"),
    [
        pytest.param(
            "/v1/things/abc",
            b"thing.i32=3",
            override("DELETE"),
            "DeleteThing",
            {"name": "things/abc", "thing": {"i32": 3}},
            id="routed under the header's method, the form as its query",
        ),
        pytest.param(
            "/v1/things/abc",
            b"thing.i32=3",
            override("delete"),
            "DeleteThing",
            {"name": "things/abc", "thing": {"i32": 3}},
            id="the method is upper-cased",
        ),
        pytest.param(
            "/v1/things/abc:archive",
            b"",
            override("po\u017ft"),
            "ArchiveThing",
            {"name": "things/abc"},
            id="upper-cased rune by rune as Go does: long s becomes S",
        ),
        pytest.param(
            "/v1/things/abc",
            b"thing.i32=3",
            override("GET"),
            "GetThing",
            {"name": "things/abc", "thing": {"i32": 3}},
            id="GET override",
        ),
        pytest.param(
            "/v1/things/abc:archive",
            b"reason=from-form",
            override("POST"),
            "ArchiveThing",
            {"name": "things/abc"},
            id="a body-star route finds the body consumed and reads no query",
        ),
        pytest.param(
            "/v1/things/x?thing.i32=9",
            b"update_mask=i32&thing.title=t",
            override("PATCH"),
            "UpdateThing",
            {"thing": {"name": "things/x"}, "updateMask": "i32"},
            id="form parameters under the body field are filtered as query ones",
        ),
        pytest.param(
            "/v1/things/abc:archive",
            b'{"reason": "json"}',
            {b"content-type": b"application/json", b"x-http-method-override": b"DELETE"},
            "ArchiveThing",
            {"name": "things/abc", "reason": "json"},
            id="ignored unless the request is a form POST",
        ),
        pytest.param(
            "/v1/things/abc:archive",
            b'{"reason": "json"}',
            {b"content-type": b"application/x-www-form-urlencoded; charset=utf-8"},
            "ArchiveThing",
            {"name": "things/abc", "reason": "json"},
            id="the content type must be exactly the form's",
        ),
    ],
)
async def test_method_override_routes_a_form_post_under_another_method(
    client: httpx.AsyncClient,
    upstream: FakeUpstream,
    path: str,
    body: bytes,
    headers: dict[bytes, bytes],
    rpc: str,
    expected: dict[str, Any],
) -> None:
    response = await client.post(path, content=body, headers=headers)

    assert response.status_code == 200, response.text
    assert response.headers["grpc-metadata-x-rpc"] == rpc
    assert last_request(upstream) == expected


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(override("GET"), id="GET override"),
        pytest.param(override("POST"), id="POST override: the path-length fallback"),
        pytest.param(FORM, id="no override: the path-length fallback"),
    ],
)
async def test_form_values_come_before_the_url_querys(
    client: httpx.AsyncClient, upstream: FakeUpstream, headers: dict[bytes, bytes]
) -> None:
    response = await client.post(
        "/api/prices?symbols=BTCUSDT", content=b"symbols=ETHUSDT", headers=headers
    )

    assert response.status_code == 200
    assert last_request(upstream) == {"symbols": ["ETHUSDT", "BTCUSDT"]}


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "code", "message"),
    [
        pytest.param(
            "/api/prices/BTCUSDT",
            b"",
            override("PUT"),
            501,
            12,
            "Method Not Allowed",
            id="a method with no route at this path",
        ),
        pytest.param(
            "/v1/things/abc:archive",
            b"",
            override("po\ufb06"),
            501,
            12,
            "Method Not Allowed",
            id="no full case mapping: the st ligature stays, so no POST",
        ),
        pytest.param(
            "/nowhere", b"", override("GET"), 404, 5, "Not Found", id="no route at this path"
        ),
        pytest.param(
            "/nowhere",
            b"a=%zz",
            override("GET"),
            400,
            3,
            "invalid URL escape",
            id="a bad form is 400 before any routing",
        ),
        pytest.param(
            "/nowhere?a=1;b=2",
            b"",
            override("GET"),
            400,
            3,
            "invalid semicolon separator",
            id="so is a bad query string",
        ),
        pytest.param(
            "/api/prices",
            b"symbols=A;B",
            FORM,
            400,
            3,
            "invalid semicolon separator",
            id="and a bad form on the path-length fallback",
        ),
    ],
)
async def test_method_override_failures(
    client: httpx.AsyncClient,
    upstream: FakeUpstream,
    path: str,
    body: bytes,
    headers: dict[bytes, bytes],
    status: int,
    code: int,
    message: str,
) -> None:
    response = await client.post(path, content=body, headers=headers)

    assert response.status_code == status
    assert response.json()["code"] == code
    assert message in response.json()["message"]
    assert upstream.recorder.requests == []


async def test_an_oversized_form_is_413_as_any_body(client: httpx.AsyncClient) -> None:
    body = b"a=" + b"x" * (4 * 1024 * 1024)

    response = await client.post("/v1/things/abc", content=body, headers=override("DELETE"))

    assert response.status_code == 413
    assert response.json()["code"] == 8
